"""`kie mcp` end to end: the SDK's in-memory client, the server, the ledger and a sandbox over HTTP."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult, ElicitRequestParams, ElicitResult, ResourceLink
from typer.testing import CliRunner

from kie.cli import app as cli
from kie.mcp.limits import Limits
from kie.mcp.server import build_server
from kie.sandbox.server import SandboxServer
from kie.store import Ledger
from tests.mcp.conftest import MakeApp

IMAGE = {"model": "google/nano-banana", "input": {"prompt": "a red fox"}}  # 4 credits
VIDEO = {"model": "veo3_fast", "input": {"prompt": "a boat at dawn"}}  # 60 credits


def job_count(ledger: Ledger) -> int:
    return sum(ledger.counts().values())


def until(condition: Callable[[], Any], seconds: float = 30.0) -> Any:
    """Wait for a condition with a deadline (the background engine works on its own schedule)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not met before the deadline")


async def auntil(condition: Callable[[], Any], seconds: float = 30.0) -> Any:
    import anyio

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        await anyio.sleep(0.02)
    raise AssertionError("condition not met before the deadline")


def structured(result: CallToolResult) -> dict[str, Any]:
    assert isinstance(result.structured_content, dict)
    return result.structured_content


def sha(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class Asker:
    """An elicitation callback standing in for the human: answers as told, remembers the question."""

    def __init__(self, action: str, approve: bool = True) -> None:
        self.action, self.approve = action, approve
        self.asked: list[str] = []

    async def __call__(self, context: Any, params: ElicitRequestParams) -> ElicitResult:
        self.asked.append(params.message)
        content = {"approve": self.approve} if self.action == "accept" else None
        return ElicitResult(action=self.action, content=content)  # type: ignore[arg-type]


async def test_generate_waits_and_saves_files_with_sha256(make_app: MakeApp, sandbox: SandboxServer) -> None:
    app = make_app()
    async with Client(build_server(app), raise_exceptions=True) as client:
        result = await client.call_tool("generate", {"jobs": [IMAGE], "idempotency_key": "fox-1"})
        out = structured(result)
        assert not result.is_error and out["status"] == "done", out
        (job,) = out["jobs"]
        assert job["state"] == "done" and job["task_id"] in sandbox.state.tasks
        (saved,) = job["files"]
        assert Path(saved["path"]).is_file() and sha(saved["path"]) == saved["sha256"]
        assert Path(saved["path"]).stat().st_size == saved["size"]
        links = [block for block in result.content if isinstance(block, ResourceLink)]
        assert [str(link.uri) for link in links] == [f"kie://files/{saved['sha256']}"]
        assert result.meta is not None and result.meta["cost"]["credits"] == 4.0
        assert result.meta["cost"]["provider"] == "kie"
        blob = await client.read_resource(f"kie://files/{saved['sha256']}")
        content = blob.contents[0]
        assert hashlib.sha256(__import__("base64").b64decode(content.blob)).hexdigest() == saved["sha256"]  # type: ignore[union-attr]
        listed = structured(await client.call_tool("get_jobs", {"job_ids": [job["job_id"]]}))
        assert listed["jobs"][0]["files"][0]["sha256"] == saved["sha256"]
    recorded = app.ledger.files_of(job["job_id"])
    assert [f["sha256"] for f in recorded] == [saved["sha256"]]


async def test_a_retried_generate_with_the_same_key_creates_no_second_task(
    make_app: MakeApp, sandbox: SandboxServer
) -> None:
    app = make_app()
    call = {"jobs": [IMAGE, {**IMAGE, "label": "second"}], "idempotency_key": "retry-me"}
    async with Client(build_server(app), raise_exceptions=True) as client:
        first = structured(await client.call_tool("generate", call))
        again = structured(await client.call_tool("generate", call))
    assert len(sandbox.state.tasks) == 2 and job_count(app.ledger) == 2
    assert [j["job_id"] for j in again["jobs"]] == [j["job_id"] for j in first["jobs"]]
    assert again["status"] == "done" and all(j["files"] for j in again["jobs"])
    restarted = make_app()  # a new server process on the same ledger
    async with Client(build_server(restarted), raise_exceptions=True) as client:
        third = structured(await client.call_tool("generate", call))
        changed = await client.call_tool("generate", {**call, "jobs": [IMAGE]})
    assert [j["job_id"] for j in third["jobs"]] == [j["job_id"] for j in first["jobs"]]
    assert len(sandbox.state.tasks) == 2 and job_count(app.ledger) == 2
    assert changed.is_error and "already used for a different request" in str(changed.content[0])


async def test_a_spend_over_the_threshold_asks_and_decline_changes_nothing(
    make_app: MakeApp, sandbox: SandboxServer, tmp_path: Path
) -> None:
    app = make_app(Limits(auto_approve_credits=5, output_dir=tmp_path / "out"))
    no = Asker("decline")
    async with Client(build_server(app), raise_exceptions=True, elicitation_callback=no) as client:
        result = await client.call_tool("generate", {"jobs": [IMAGE, IMAGE], "idempotency_key": "two"})
    out = structured(result)
    assert out["status"] == "declined" and no.asked == [
        "An agent wants to spend 8 credits (about $0.04) on 2 × google/nano-banana. Approve?"
    ]
    assert job_count(app.ledger) == 0 and not sandbox.state.tasks

    unticked = Asker("accept", approve=False)
    async with Client(build_server(app), raise_exceptions=True, elicitation_callback=unticked) as client:
        out = structured(await client.call_tool("generate", {"jobs": [IMAGE, IMAGE]}))
    assert out["status"] == "declined" and job_count(app.ledger) == 0 and not sandbox.state.tasks

    yes = Asker("accept")
    async with Client(build_server(app), raise_exceptions=True, elicitation_callback=yes) as client:
        cheap = structured(await client.call_tool("generate", {"jobs": [IMAGE]}))
        assert cheap["status"] == "done" and not yes.asked  # 4 credits: under the threshold, nobody asked
        dear = structured(await client.call_tool("generate", {"jobs": [IMAGE, IMAGE]}))
    assert dear["status"] == "done" and len(yes.asked) == 1 and len(sandbox.state.tasks) == 3


async def test_legacy_clients_are_asked_too(
    make_app: MakeApp, sandbox: SandboxServer, tmp_path: Path
) -> None:
    app = make_app(Limits(auto_approve_credits=0, output_dir=tmp_path / "out"))
    no = Asker("decline")
    async with Client(build_server(app), mode="legacy", elicitation_callback=no) as client:
        out = structured(await client.call_tool("generate", {"jobs": [IMAGE]}))
    assert out["status"] == "declined" and len(no.asked) == 1 and not sandbox.state.tasks


async def test_without_elicitation_a_quote_then_kie_mcp_approve_submits_once(
    make_app: MakeApp, sandbox: SandboxServer, store_url: str, tmp_path: Path
) -> None:
    app = make_app(Limits(auto_approve_credits=5, output_dir=tmp_path / "out"))
    call = {"jobs": [IMAGE, IMAGE], "idempotency_key": "needs-a-human"}
    async with Client(build_server(app), raise_exceptions=True) as client:
        asked = structured(await client.call_tool("generate", call))
        assert asked["status"] == "confirmation_required" and asked["quote"]["credits"] == 8
        assert job_count(app.ledger) == 0 and not sandbox.state.tasks
        again = structured(await client.call_tool("generate", call))  # asking twice: still one quote
        quote = asked["quote"]["quote_id"]
        assert (
            again["quote"]["quote_id"] == quote
            and asked["quote"]["approve_command"] == f"kie mcp approve {quote}"
        )

        approved = CliRunner().invoke(cli, ["mcp", "approve", quote, "--store", store_url, "--json"])
        assert approved.exit_code == 0, approved.output
        assert '"approved": true' in approved.output

        done = structured(await client.call_tool("generate", call))
        assert done["status"] == "done" and len(sandbox.state.tasks) == 2
        repeat = structured(await client.call_tool("generate", call))
        assert repeat["status"] == "done" and len(sandbox.state.tasks) == 2
        other_key = structured(await client.call_tool("generate", {**call, "idempotency_key": "other"}))
        assert other_key["status"] == "confirmation_required"  # an approval is used once
        assert other_key["quote"]["quote_id"] != quote
    assert len(sandbox.state.tasks) == 2 and job_count(app.ledger) == 2
    used = CliRunner().invoke(cli, ["mcp", "approve", quote, "--store", store_url])
    assert used.exit_code == 2 and "already used" in used.output
    missing = CliRunner().invoke(cli, ["mcp", "approve", "nope", "--store", store_url])
    assert missing.exit_code == 2 and "no quote" in missing.output


@pytest.mark.parametrize(
    ("limits", "calls", "reason"),
    [
        ({"max_credits_per_call": 7}, [[IMAGE, IMAGE]], "per call"),
        ({"max_credits_per_session": 6}, [[IMAGE], [IMAGE]], "for this session"),
        ({"max_credits_per_day": 3}, [[IMAGE]], "per day"),
        ({"max_credits_total": 6}, [[IMAGE], [IMAGE]], "KIE_MAX_CREDITS"),
        ({"models": ("bytedance/*", "z-image")}, [[IMAGE]], "not among the allowed models"),
        ({"read_only": True}, [[IMAGE]], "read-only"),
    ],
)
async def test_budget_and_allow_list_refusals_change_nothing(
    make_app: MakeApp,
    sandbox: SandboxServer,
    tmp_path: Path,
    limits: dict[str, Any],
    calls: list[list[dict[str, Any]]],
    reason: str,
) -> None:
    app = make_app(Limits(auto_approve_credits=100, output_dir=tmp_path / "out", **limits))
    asked = Asker("accept")
    async with Client(build_server(app), raise_exceptions=True, elicitation_callback=asked) as client:
        *allowed, refused_call = calls
        for jobs in allowed:
            assert structured(await client.call_tool("generate", {"jobs": jobs}))["status"] == "done"
        before_jobs, before_tasks = job_count(app.ledger), len(sandbox.state.tasks)
        result = await client.call_tool("generate", {"jobs": refused_call})
        estimate = structured(await client.call_tool("estimate_cost", {"jobs": refused_call}))
    out = structured(result)
    assert result.is_error and out["status"] == "refused" and reason in out["message"]
    assert estimate["refused"] == out["message"]
    assert job_count(app.ledger) == before_jobs and len(sandbox.state.tasks) == before_tasks
    assert not asked.asked  # a hard limit is never put to the human


async def test_an_unknown_price_is_refused_not_counted_as_free(
    make_app: MakeApp, sandbox: SandboxServer
) -> None:
    app = make_app()
    unknown = {"model": "veo3_fast", "input": {"prompt": "a boat", "duration": 4}}  # only 8 s is priced
    async with Client(build_server(app), raise_exceptions=True) as client:
        estimate = structured(await client.call_tool("estimate_cost", {"jobs": [unknown]}))
        out = structured(await client.call_tool("generate", {"jobs": [unknown]}))
    assert estimate["total_credits"] is None and estimate["unknown_prices"] == ["veo3_fast"]
    assert out["status"] == "refused" and "unknown" in out["message"] and not sandbox.state.tasks


async def test_a_veo_task_that_fails_asynchronously_ends_failed(
    make_app: MakeApp, sandbox: SandboxServer, tmp_path: Path
) -> None:
    fault = {"endpoint": "generation", "kind": "fail_generation", "fail_code": "400", "fail_msg": "flagged"}
    assert httpx.post(f"{sandbox.url}/_sandbox/faults", json=fault).json()["ok"]
    app = make_app(Limits(auto_approve_credits=100, output_dir=tmp_path / "out"))
    async with Client(build_server(app), raise_exceptions=True) as client:
        started = structured(await client.call_tool("generate", {"jobs": [VIDEO], "idempotency_key": "veo"}))
        assert started["status"] == "pending" and started["pending_job_ids"]  # video: back at once
        assert started["jobs"][0]["task_id"]  # the create was answered before the call returned
        waited = structured(
            await client.call_tool("wait_for_jobs", {"job_ids": started["pending_job_ids"], "timeout_s": 30})
        )
    (job,) = waited["jobs"]
    assert job["state"] == "failed" and "flagged" in job["error"] and not job["files"]
    assert waited["still_running"] == []


@pytest.mark.parametrize("sandbox", [{"time_scale": 0.04}], indirect=True)
async def test_a_client_timeout_mid_wait_still_ends_with_the_file(
    make_app: MakeApp, sandbox: SandboxServer
) -> None:
    app = make_app()
    async with Client(build_server(app), raise_exceptions=True) as client:
        out = structured(await client.call_tool("generate", {"jobs": [IMAGE], "wait_seconds": 0}))
        job_id = out["jobs"][0]["job_id"]
        assert out["status"] == "pending" and out["jobs"][0]["state"] == "running"
        with pytest.raises(MCPError, match="Timed out"):
            await client.call_tool("wait_for_jobs", {"job_ids": [job_id]}, read_timeout_seconds=0.05)
        assert app.ledger.job(job_id)["state"] == "running"  # type: ignore[index]
        done = await auntil(lambda: app.ledger.job(job_id)["state"] == "done")  # type: ignore[index]
        assert done
    (saved,) = app.ledger.files_of(job_id)
    assert sha(saved["path"]) == saved["sha256"] and len(sandbox.state.tasks) == 1


@pytest.mark.parametrize("sandbox", [{"time_scale": 0.04}], indirect=True)
async def test_a_restart_between_submit_and_download_then_get_jobs_shows_the_file(
    make_app: MakeApp, sandbox: SandboxServer
) -> None:
    first = make_app()
    async with Client(build_server(first), raise_exceptions=True) as client:
        out = structured(await client.call_tool("generate", {"jobs": [IMAGE], "wait_seconds": 0}))
        job_id = out["jobs"][0]["job_id"]
    stopped = first.ledger.job(job_id)
    assert stopped is not None and stopped["state"] == "running" and stopped["task_id"]
    assert not first.ledger.files_of(job_id)

    second = make_app()  # the server starts again and takes up the unfinished batch
    async with Client(build_server(second), raise_exceptions=True) as client:

        async def listed() -> dict[str, Any]:
            return structured(await client.call_tool("get_jobs", {"job_ids": [job_id]}))["jobs"][0]

        import anyio

        end = time.monotonic() + 30
        job = await listed()
        while job["state"] != "done" and time.monotonic() < end:
            await anyio.sleep(0.05)
            job = await listed()
    assert job["state"] == "done" and job["task_id"] == stopped["task_id"]
    assert sha(job["files"][0]["path"]) == job["files"][0]["sha256"]
    assert len(sandbox.state.tasks) == 1


@pytest.mark.parametrize("sandbox", [{"time_scale": 0.02}], indirect=True)
async def test_waits_report_growing_progress(make_app: MakeApp) -> None:
    app = make_app()
    seen: list[tuple[float, float | None, str | None]] = []

    async def progress(value: float, total: float | None, message: str | None) -> None:
        seen.append((value, total, message))

    async with Client(build_server(app), raise_exceptions=True) as client:
        out = structured(
            await client.call_tool("generate", {"jobs": [IMAGE, IMAGE]}, progress_callback=progress)
        )
    assert out["status"] == "done"
    values = [value for value, _, _ in seen]
    assert values == sorted(values) and len(set(values)) == len(values)
    assert seen[-1][2] == "2/2 done" and seen[0][2] in ("0/2 done", "1/2 done")


async def test_compare_models_runs_a_matrix_through_the_same_gate(
    make_app: MakeApp, sandbox: SandboxServer, tmp_path: Path
) -> None:
    app = make_app(Limits(auto_approve_credits=5, output_dir=tmp_path / "out"))
    no = Asker("decline")
    matrix = {"prompts": ["a fox", "an owl"], "models": ["google/nano-banana", "z-image"]}
    async with Client(build_server(app), raise_exceptions=True, elicitation_callback=no) as client:
        out = structured(await client.call_tool("compare_models", matrix))
    assert out["status"] == "declined" and len(no.asked) == 1 and "2 × z-image" in no.asked[0]
    assert job_count(app.ledger) == 0 and not sandbox.state.tasks
    app.limits = Limits(auto_approve_credits=50, output_dir=tmp_path / "out")
    async with Client(build_server(app), raise_exceptions=True) as client:
        out = structured(await client.call_tool("compare_models", matrix))
    assert out["status"] == "done" and len(out["jobs"]) == 4 and len(sandbox.state.tasks) == 4
    assert [j["model"] for j in out["jobs"]] == ["google/nano-banana", "z-image"] * 2
