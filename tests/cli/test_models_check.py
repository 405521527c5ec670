"""`kie models check`: drift between the catalogue and Kie's public sources, end to end over HTTP.

The sandbox serves copies of the sources built from the catalogue; a test plants drift in them.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from kie.cli import app
from kie.sandbox.server import SandboxServer

runner = CliRunner()
NEW = "acme/brand-new-image"
GONE = "nano-banana-pro"
REPRICED = "z-image"
OFFERED = "bytedance/seedance-2"


def check(sandbox: SandboxServer, *extra: str) -> tuple[int, dict[str, Any]]:
    result = runner.invoke(app, ["models", "check", "--sources", sandbox.url, "--json", *extra])
    assert "Traceback" not in result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return result.exit_code, data


def plant(sandbox: SandboxServer, drift: dict[str, Any]) -> None:
    answer = httpx.post(f"{sandbox.url}/_sandbox/sources", json=drift)
    assert answer.status_code == 200, answer.text


def plant_all(sandbox: SandboxServer) -> None:
    plant(sandbox, {"add": {"model": NEW, "credits": 5, "fields": ["prompt"]}})
    plant(sandbox, {"remove": GONE})
    plant(sandbox, {"price": {"model": REPRICED, "credits": 2}})
    plant(sandbox, {"expired_offer": {"model": OFFERED, "credits": 15, "ended": "2026-09-01"}})


def test_matching_sources_exit_0(sandbox: SandboxServer) -> None:
    code, data = check(sandbox)
    assert code == 0 and data["drift"] is False and data["findings"] == []
    assert data["sources_read"] == ["pricing feed", "docs index", "sitemap", "model-path list"]
    assert {"model": "bytedance/seedance-2-5", "ended": "2026-09-17"} in data["ended_offers"]
    text = runner.invoke(app, ["models", "check", "--sources", sandbox.url])
    assert text.exit_code == 0 and "The catalogue matches Kie's sources." in text.stdout


def test_each_planted_drift_is_reported_once_and_exits_3(sandbox: SandboxServer) -> None:
    plant_all(sandbox)
    code, data = check(sandbox)
    assert code == 3 and data["drift"] is True
    found = Counter((f["model"], f["kind"]) for f in data["findings"])
    assert found == {
        (NEW, "new"): 1,
        (GONE, "gone"): 1,
        (REPRICED, "price"): 1,
        (OFFERED, "expired-offer"): 1,
    }
    by_kind = {f["kind"]: f for f in data["findings"]}
    assert set(by_kind["new"]["sources"]) == {"pricing feed", "model-path list", "docs index"}
    assert by_kind["new"]["listed"]  # the sitemap's lastmod
    assert "Kie lists 2" in by_kind["price"]["detail"] and "0.8" in by_kind["price"]["detail"]
    assert "ended 2026-09-01" in by_kind["expired-offer"]["detail"]
    assert "not used" in by_kind["expired-offer"]["detail"]


def test_the_text_report_names_each_drift_and_exits_3(sandbox: SandboxServer) -> None:
    plant_all(sandbox)
    result = runner.invoke(app, ["models", "check", "--sources", sandbox.url])
    assert result.exit_code == 3
    out = result.stdout
    for title in (
        "new at Kie, missing here",
        "here, and gone at Kie",
        "price different",
        "offer that has ended",
    ):
        assert title in out
    assert out.count(NEW) == 1 and "4 differences" in out
    assert "[REAL]" not in out and "S-HAR" not in out


def test_reset_fixtures_match_again(sandbox: SandboxServer) -> None:
    plant_all(sandbox)
    plant(sandbox, {"reset": True})
    assert check(sandbox)[0] == 0


def test_no_probe_request_is_sent_without_the_flag(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KIE_API_KEY", sandbox.api_key)
    monkeypatch.setenv("KIE_BASE_URL", sandbox.url)
    plant_all(sandbox)
    code, data = check(sandbox)
    assert code == 3 and all("probe" not in f for f in data["findings"])
    assert sandbox.state.requests_for("createTask") == 0


def test_probe_asks_with_an_empty_input_only_when_asked(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KIE_API_KEY", sandbox.api_key)
    monkeypatch.setenv("KIE_BASE_URL", sandbox.url)
    plant_all(sandbox)
    code, data = check(sandbox, "--probe")
    assert code == 3
    probes = {f["model"]: f.get("probe") for f in data["findings"]}
    assert probes[GONE] is not None and probes[GONE].startswith("exists at Kie")
    assert probes[NEW] is not None and probes[NEW].startswith("not at Kie")
    assert probes[REPRICED] is None  # only new and gone ids are probed
    assert sandbox.state.requests_for("createTask") == 2 and not sandbox.state.tasks


def test_probe_without_a_key_is_one_sentence(sandbox: SandboxServer) -> None:
    result = runner.invoke(app, ["models", "check", "--sources", sandbox.url, "--probe"])
    assert result.exit_code == 2 and "KIE_API_KEY" in result.stderr and "Traceback" not in result.stderr


def test_unreachable_sources_exit_1_in_one_sentence() -> None:
    result = runner.invoke(app, ["models", "check", "--sources", "http://127.0.0.1:9"])
    assert result.exit_code == 1 and "could be read" in result.stderr


def test_check_on_the_built_in_sandbox_matches() -> None:
    result = runner.invoke(app, ["models", "check", "--sandbox", "--json"])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["sandbox"] is True and data["drift"] is False
