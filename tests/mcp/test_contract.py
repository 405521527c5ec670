"""What an agent's host sees of `kie mcp` before any call: names, schemas, hints and their size.

The snapshot is `tests/mcp/tools.json`; after a deliberate change to the tool surface, rewrite it with
`KIE_UPDATE_MCP_SNAPSHOT=1 pytest tests/mcp/test_contract.py`.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from kie.client import AsyncKie
from kie.config import Settings
from kie.mcp.app import KieApp
from kie.mcp.limits import Limits
from kie.mcp.server import build_server
from kie.store import Ledger

SNAPSHOT = Path(__file__).with_name("tools.json")
TOKEN_BUDGET = 4000
CHARS_PER_TOKEN = 4  # the usual approximation for English and JSON with GPT-style tokenizers
CONSENT_LIKE = re.compile(
    r"approv|confirm|consent|authori[sz]|dry.?run|^yes$|^force$|skip|budget|max_credits|allow"
)
SPENDING = {"generate", "compare_models"}


@pytest.fixture
def app(tmp_path: Path) -> Iterator[KieApp]:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    # Nothing listens on port 9: listing tools, resources and prompts never needs Kie.
    settings = Settings(api_key="sk-contract-0123456789", base_url="http://127.0.0.1:9", home=tmp_path)
    yield KieApp(settings, ledger, Limits(), lambda: AsyncKie(settings=settings))
    ledger.close()


async def listed(app: KieApp) -> list[dict[str, Any]]:
    server = build_server(app)
    tools = await server.list_tools()
    return [tool.model_dump(mode="json", by_alias=True, exclude_none=True) for tool in tools]


def property_names(schema: Any) -> Iterator[str]:
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key == "properties" and isinstance(value, dict):
                yield from value
            yield from property_names(value)
    elif isinstance(schema, list):
        for item in schema:
            yield from property_names(item)


async def test_tool_names_and_schemas_match_the_snapshot(app: KieApp) -> None:
    tools = await listed(app)
    if os.environ.get("KIE_UPDATE_MCP_SNAPSHOT"):
        SNAPSHOT.write_text(json.dumps(tools, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    expected = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    assert [t["name"] for t in tools] == [t["name"] for t in expected]
    assert tools == expected


async def test_the_tool_list_stays_under_the_token_budget(app: KieApp) -> None:
    async with Client(build_server(app)) as client:
        result = await client.list_tools()
    wire = result.model_dump_json(by_alias=True, exclude_none=True)
    tokens = len(wire) / CHARS_PER_TOKEN
    assert len(result.tools) == 11
    assert tokens < TOKEN_BUDGET, f"tools/list is about {tokens:.0f} tokens ({len(wire)} characters)"


async def test_no_input_schema_has_a_consent_like_field(app: KieApp) -> None:
    for tool in await listed(app):
        names = list(property_names(tool["inputSchema"]))
        assert not [n for n in names if CONSENT_LIKE.search(n.lower())], tool["name"]
    generate = next(t for t in await listed(app) if t["name"] == "generate")
    assert set(generate["inputSchema"]["properties"]) == {"jobs", "idempotency_key", "wait_seconds"}


async def test_every_spending_tool_has_the_open_world_hint_and_cost_metadata(app: KieApp) -> None:
    tools = {t["name"]: t for t in await listed(app)}
    spending = {name for name, t in tools.items() if t.get("_meta", {}).get("cost", {}).get("spends")}
    assert spending == SPENDING
    for name in SPENDING:
        hints = tools[name]["annotations"]
        assert hints["openWorldHint"] is True and hints["readOnlyHint"] is False
        assert hints["destructiveHint"] is False
        assert "outputSchema" in tools[name]
    for name, tool in tools.items():
        if name not in SPENDING | {"upload_file"}:
            assert tool["annotations"]["readOnlyHint"] is True, name


async def test_resources_and_model_details_carry_no_maintainer_tags(app: KieApp) -> None:
    async with Client(build_server(app)) as client:
        listed_resources = await client.list_resources()
        texts = []
        for resource in listed_resources.resources:
            texts += [c.text for c in (await client.read_resource(str(resource.uri))).contents]  # type: ignore[union-attr]
        texts += [c.text for c in (await client.read_resource("kie://models/google/nano-banana")).contents]  # type: ignore[union-attr]
        model = await client.call_tool("get_model", {"model": "veo3_fast"})
    uris = {str(r.uri) for r in listed_resources.resources}
    assert {"kie://models", "kie://guides/model-selection", "kie://guides/pricing", "kie://budget"} <= uris
    assert '"id": "google/nano-banana"' in texts[-1]
    body = json.dumps(model.structured_content) + "".join(texts)
    for tag in ("S-CLA", "S-HAR", "[REAL]", "[DOCS]", "pricing_data.md", "§"):
        assert tag not in body
    assert model.structured_content is not None and "source" not in model.structured_content["price_rule"]


async def test_prompts_are_templates_with_the_brief(app: KieApp) -> None:
    async with Client(build_server(app)) as client:
        prompts = await client.list_prompts()
        rendered = await client.get_prompt("make-image-for", {"brief": "a poster for a jazz night"})
    assert {p.name for p in prompts.prompts} == {"compare-models-for", "make-image-for", "storyboard-video"}
    assert "a poster for a jazz night" in rendered.messages[0].content.text  # type: ignore[union-attr]
