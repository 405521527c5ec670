"""Per-model behaviour from the recordings: one non-terminal state per model, the numeric echo of
`param.input`, and the newer documented fields only behind `--recordinfo-fields 2026-09`."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from kie.client._base import sync_transport
from kie.sandbox.recorded import echo_input
from kie.sandbox.server import SandboxServer
from tests.receiver import CallbackReceiver

RECORDED_STATES = {
    "seedream/5-lite-text-to-image": "generating",
    "seedream/5-lite-image-to-image": "generating",
    "gpt-image-2-text-to-image": "generating",
    "kling-3.0/video": "generating",
    "gpt-image-2-image-to-image": "waiting",
    "nano-banana-pro": "waiting",
    "wan/2-7-image": "waiting",
}
INPUTS: dict[str, dict[str, Any]] = {
    "seedream/5-lite-image-to-image": {"image_urls": ["https://example.com/a.png"]},
    "gpt-image-2-image-to-image": {"input_urls": ["https://example.com/a.png"]},
}


def api(sandbox: SandboxServer) -> httpx.Client:
    return httpx.Client(
        base_url=sandbox.url,
        headers={"Authorization": f"Bearer {sandbox.api_key}"},
        timeout=5,
        transport=sync_transport(),
    )


def run(http: httpx.Client, model: str, values: dict[str, Any], **extra: Any) -> tuple[set[str], dict]:
    """Create, poll to the end; the non-terminal states seen and the final record."""
    body = {"model": model, "input": {"prompt": "a fox", **values}, **extra}
    task_id = http.post("/api/v1/jobs/createTask", json=body).json()["data"]["taskId"]
    seen: set[str] = set()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        record = http.get("/api/v1/jobs/recordInfo", params={"taskId": task_id}).json()["data"]
        if record["state"] in ("success", "fail"):
            return seen, record
        seen.add(record["state"])
        time.sleep(0.002)
    raise AssertionError(f"{model} never finished")


@pytest.mark.parametrize("model", list(RECORDED_STATES))
def test_each_model_shows_its_one_recorded_state(sandbox: SandboxServer, model: str) -> None:
    with api(sandbox) as http:
        seen, record = run(http, model, INPUTS.get(model, {}))
    assert seen == {RECORDED_STATES[model]} and record["state"] == "success"
    (task,) = sandbox.state.tasks.values()
    assert [s for s, _ in task.history] == [RECORDED_STATES[model], "success"]


def test_numeric_strings_are_echoed_as_numbers() -> None:
    assert echo_input({"duration": "6", "ratio": "1.5", "seed": "007", "prompt": "6 foxes", "n": 2}) == {
        "duration": 6,
        "ratio": 1.5,
        "seed": "007",
        "prompt": "6 foxes",
        "n": 2,
    }


def test_param_input_echo_coerces_like_kie(sandbox: SandboxServer) -> None:
    with api(sandbox) as http:
        _, record = run(http, "grok-imagine/text-to-video", {"duration": "6"})
    assert json.loads(json.loads(record["param"])["input"]) == {"prompt": "a fox", "duration": 6}


def test_recorded_shapes_are_the_default(sandbox: SandboxServer) -> None:
    with CallbackReceiver() as receiver, api(sandbox) as http:
        _, record = run(http, "kling-3.0/video", {"duration": "5"}, callBackUrl=receiver.url)
        (hit,) = receiver.wait_for(1)
    assert not {"updateTime", "progress", "creditsConsumed"} & set(record)
    assert not {"firstFrameUrl", "lastFrameUrl", "resultObject"} & set(hit.body["data"])


@pytest.mark.parametrize("sandbox", [{"recordinfo_fields": "2026-09"}], indirect=True)
def test_newer_documented_fields_behind_the_switch(sandbox: SandboxServer) -> None:
    with CallbackReceiver() as receiver, api(sandbox) as http:
        body = {"model": "kling-3.0/video", "input": {"prompt": "a fox"}, "callBackUrl": receiver.url}
        task_id = http.post("/api/v1/jobs/createTask", json=body).json()["data"]["taskId"]
        running = http.get("/api/v1/jobs/recordInfo", params={"taskId": task_id}).json()["data"]
        (hit,) = receiver.wait_for(1)
        done = http.get("/api/v1/jobs/recordInfo", params={"taskId": task_id}).json()["data"]
        data = hit.body["data"]
        frames = [http.get(data[k]) for k in ("firstFrameUrl", "lastFrameUrl")]
    assert running["updateTime"] == running["createTime"] and running["creditsConsumed"] == 0
    assert 0 <= running["progress"] < 100
    assert done["progress"] == 100 and done["updateTime"] == done["completeTime"]
    assert done["creditsConsumed"] == data["creditsConsumed"] > 0
    assert data["resultObject"] is None
    assert all(f.status_code == 200 and f.content.startswith(b"\xff\xd8\xff") for f in frames)
