"""The sandbox speaks the real Market protocol: shapes, types and codes of kie-api.md §3 over real HTTP."""

from __future__ import annotations

import json
import re
import time

import httpx
import pytest

from kie.client._base import sync_transport
from kie.sandbox.server import SandboxServer

HEX32 = re.compile(r"^[0-9a-f]{32}$")


def api(sandbox: SandboxServer, key: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key or sandbox.api_key}"}
    return httpx.Client(base_url=sandbox.url, headers=headers, timeout=5, transport=sync_transport())


def wait_state(http: httpx.Client, task_id: str, states: set[str], timeout: float = 10) -> dict:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        data = http.get("/api/v1/jobs/recordInfo", params={"taskId": task_id}).json()["data"]
        if data and data["state"] in states:
            return data
        time.sleep(0.005)
    raise AssertionError(f"task never reached {states}")


def test_create_answer_is_the_real_shape(sandbox: SandboxServer) -> None:
    with api(sandbox) as http:
        response = http.post(
            "/api/v1/jobs/createTask", json={"model": "nano-banana-pro", "input": {"prompt": "a fox"}}
        )
    assert response.status_code == 200
    body = response.json()
    assert body["code"] == 200 and body["msg"] == "success"
    assert HEX32.match(body["data"]["taskId"]) and body["data"]["recordId"] == body["data"]["taskId"]


def test_record_lifecycle_and_field_types(sandbox: SandboxServer) -> None:
    sent = {"prompt": "A futuristic city", "resolution": "2K", "aspect_ratio": "16:9"}
    with api(sandbox) as http:
        task_id = http.post(
            "/api/v1/jobs/createTask", json={"model": "nano-banana-pro", "input": sent}
        ).json()["data"]["taskId"]
        first = http.get("/api/v1/jobs/recordInfo", params={"taskId": task_id}).json()
        assert first["code"] == 200 and first["msg"] == "success"
        running = first["data"]
        assert running["state"] in ("waiting", "queuing", "generating")
        assert running["resultJson"] == "" and running["failCode"] is None and running["failMsg"] is None
        assert running["costTime"] is None and running["completeTime"] is None
        assert isinstance(running["createTime"], int) and running["createTime"] > 1_700_000_000_000
        assert "updateTime" not in running and "progress" not in running
        param = json.loads(running["param"])
        assert isinstance(param["input"], str)  # double-encoded, as in real traffic
        assert json.loads(param["input"]) == sent  # exactly the keys sent: no defaults added
        assert param["model"] == "nano-banana-pro"
        done = wait_state(http, task_id, {"success"})
    result = json.loads(done["resultJson"])
    assert isinstance(result["resultUrls"], list) and len(result["resultUrls"]) == 1
    assert isinstance(done["costTime"], int) and done["costTime"] >= 1
    assert isinstance(done["completeTime"], int) and done["completeTime"] >= done["createTime"]
    states = [s for s, _ in sandbox.state.tasks[task_id].history]
    assert states == ["waiting", "success"]  # one state for the whole task, as recorded for this model


def test_unknown_and_missing_task_ids(sandbox: SandboxServer) -> None:
    with api(sandbox) as http:
        unknown = http.get("/api/v1/jobs/recordInfo", params={"taskId": "0" * 32})
        missing = http.get("/api/v1/jobs/recordInfo")
    assert unknown.status_code == 200 and unknown.json() == {
        "code": 422,
        "msg": "recordInfo is null",
        "data": None,
    }
    assert missing.json()["code"] == 400 and missing.json()["msg"] == "taskId parameter is required"


def test_wrong_key_is_http_200_with_envelope_401(sandbox: SandboxServer) -> None:
    with api(sandbox, key="sk-wrong") as http:
        response = http.post(
            "/api/v1/jobs/createTask", json={"model": "nano-banana-pro", "input": {"prompt": "x"}}
        )
    assert response.status_code == 200
    assert response.json()["code"] == 401 and "Authentication failed" in response.json()["msg"]
    with httpx.Client(base_url=sandbox.url) as http:
        assert http.get("/api/v1/chat/credit").json()["code"] == 401
    assert sandbox.state.tasks == {}


@pytest.mark.parametrize("sandbox", [{"strict_http": True}], indirect=True)
def test_strict_http_mode_sets_the_status_too(sandbox: SandboxServer) -> None:
    with api(sandbox, key="sk-wrong") as http:
        response = http.get("/api/v1/chat/credit")
    assert response.status_code == 401 and response.json()["code"] == 401


def test_playground_alias(sandbox: SandboxServer) -> None:
    with api(sandbox) as http:
        task_id = http.post(
            "/api/v1/playground/createTask", json={"model": "nano-banana-pro", "input": {"prompt": "x"}}
        ).json()["data"]["taskId"]
        record = http.get("/api/v1/playground/recordInfo", params={"taskId": task_id}).json()
    assert record["code"] == 200 and record["data"]["taskId"] == task_id


def test_validation_failures_are_422_with_a_message(sandbox: SandboxServer) -> None:
    with api(sandbox) as http:
        bad_enum = http.post(
            "/api/v1/jobs/createTask",
            json={"model": "nano-banana-pro", "input": {"prompt": "x", "resolution": "8K"}},
        ).json()
        no_prompt = http.post(
            "/api/v1/jobs/createTask", json={"model": "nano-banana-pro", "input": {}}
        ).json()
        bad_model = http.post(
            "/api/v1/jobs/createTask", json={"model": "nano-banana-9", "input": {"prompt": "x"}}
        ).json()
    assert bad_enum["code"] == 422 and "resolution" in bad_enum["msg"] and "1K" in bad_enum["msg"]
    assert no_prompt["code"] == 422 and "prompt" in no_prompt["msg"]
    assert bad_model["code"] == 422 and "not supported" in bad_model["msg"]
    assert sandbox.state.tasks == {}


@pytest.mark.parametrize("sandbox", [{"credits": 10.0}], indirect=True)
def test_insufficient_credits_is_402_and_creates_nothing(sandbox: SandboxServer) -> None:
    with api(sandbox) as http:
        answer = http.post(
            "/api/v1/jobs/createTask", json={"model": "nano-banana-pro", "input": {"prompt": "x"}}
        ).json()
    assert answer["code"] == 402 and sandbox.state.tasks == {}


def test_credits_are_a_number_and_charged_on_success_only(sandbox: SandboxServer) -> None:
    with api(sandbox) as http:
        before = http.get("/api/v1/chat/credit").json()
        assert before["code"] == 200 and isinstance(before["data"], (int, float))
        task_id = http.post(
            "/api/v1/jobs/createTask",
            json={"model": "nano-banana-pro", "input": {"prompt": "x", "resolution": "4K"}},
        ).json()["data"]["taskId"]
        wait_state(http, task_id, {"success"})
        after = http.get("/api/v1/chat/credit").json()["data"]
    assert before["data"] - after == 24  # the catalogue's 4K price


@pytest.mark.parametrize("sandbox", [{"visible_after": 5.0, "time_scale": 0.02}], indirect=True)
def test_not_yet_visible_window(sandbox: SandboxServer) -> None:
    with api(sandbox) as http:
        task_id = http.post(
            "/api/v1/jobs/createTask", json={"model": "nano-banana-pro", "input": {"prompt": "x"}}
        ).json()["data"]["taskId"]
        early = http.get("/api/v1/jobs/recordInfo", params={"taskId": task_id}).json()
        assert early == {"code": 422, "msg": "recordInfo is null", "data": None}
        time.sleep(0.12)
        later = http.get("/api/v1/jobs/recordInfo", params={"taskId": task_id}).json()
    assert later["code"] == 200 and later["data"]["taskId"] == task_id


def test_introspection_counts_requests_per_endpoint_and_key(sandbox: SandboxServer) -> None:
    with api(sandbox) as http:
        task_id = http.post(
            "/api/v1/jobs/createTask", json={"model": "nano-banana-pro", "input": {"prompt": "x"}}
        ).json()["data"]["taskId"]
        http.get("/api/v1/jobs/recordInfo", params={"taskId": task_id})
        http.get("/api/v1/jobs/recordInfo", params={"taskId": task_id})
        snapshot = http.get("/_sandbox/state").json()
    counts = {(r["endpoint"], r["key"]): r["count"] for r in snapshot["requests"]}
    key_id = sandbox.state.key_id(sandbox.api_key)
    assert counts[("createTask", key_id)] == 1 and counts[("recordInfo", key_id)] == 2
    assert sandbox.api_key not in json.dumps(snapshot)  # keys are never shown, only their ids
    assert [t["taskId"] for t in snapshot["tasks"]] == [task_id]
