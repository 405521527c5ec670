"""One virtual clock: the times the sandbox reports keep Kie's relations at any time scale, while the
callback signature timestamp stays on the receiver's real clock."""

from __future__ import annotations

import json
import time
from datetime import datetime

import httpx
import pytest

from kie.client._base import sync_transport
from kie.sandbox.clock import VirtualClock
from kie.sandbox.server import SandboxServer
from kie.webhooks import ReplayCache, verify
from tests.receiver import CallbackReceiver

SCALES = [0.002, 0.01]
KEY = "whk-clock"


def api(sandbox: SandboxServer) -> httpx.Client:
    return httpx.Client(
        base_url=sandbox.url,
        headers={"Authorization": f"Bearer {sandbox.api_key}"},
        timeout=5,
        transport=sync_transport(),
    )


def test_virtual_clock_maps_real_seconds_to_scaled_time() -> None:
    clock = VirtualClock(0.01, wall=1_000.0, mono=50.0)
    assert clock.ms(50.0) == 1_000_000
    assert clock.ms(50.12) == 1_012_000  # 0.12 real seconds are 12 virtual seconds
    assert VirtualClock.cost_seconds(1_777_534_515_134, 1_777_534_578_854) == 63  # Appendix C: 63 720 ms
    with pytest.raises(ValueError):
        VirtualClock(0)


def test_signature_times_are_real_and_strictly_increasing_per_task() -> None:
    first = VirtualClock.signature_time()
    assert abs(first - time.time()) < 5
    assert VirtualClock.signature_time(first) == first + 1
    assert VirtualClock.signature_time(first + 10) == first + 11


@pytest.mark.parametrize(
    "sandbox", [{"time_scale": s, "duration_jitter": 0.0} for s in SCALES], indirect=True
)
def test_cost_time_is_the_seconds_between_create_and_complete(sandbox: SandboxServer) -> None:
    with api(sandbox) as http:
        task_id = http.post(
            "/api/v1/jobs/createTask", json={"model": "grok-imagine/text-to-image", "input": {"prompt": "x"}}
        ).json()["data"]["taskId"]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            record = http.get("/api/v1/jobs/recordInfo", params={"taskId": task_id}).json()["data"]
            if record["state"] == "success":
                break
            time.sleep(0.005)
    assert record["costTime"] == (record["completeTime"] - record["createTime"]) // 1000
    assert record["costTime"] >= 12  # the model's recorded 12 s, in virtual seconds at any scale
    assert record["createTime"] >= sandbox.state.clock.ms(sandbox.state.started)


@pytest.mark.parametrize("sandbox", [{"time_scale": s, "webhook_key": KEY} for s in SCALES], indirect=True)
def test_callback_times_are_virtual_and_its_signature_real(sandbox: SandboxServer) -> None:
    """wan/2-7-videoedit takes 785 virtual seconds: by its callback the virtual clock is more than the
    300 s tolerance ahead of the real one, yet the signature verifies with the receiver's real clock."""
    with CallbackReceiver() as receiver, api(sandbox) as http:
        body = {
            "model": "wan/2-7-videoedit",
            "callBackUrl": receiver.url,
            "input": {"prompt": "watercolor", "video_url": "https://example.com/v.mp4"},
        }
        assert http.post("/api/v1/jobs/createTask", json=body).json()["code"] == 200
        (hit,) = receiver.wait_for(1, timeout=30)
    data = hit.body["data"]
    assert data["costTime"] == (data["completeTime"] - data["createTime"]) // 1000 >= 500
    assert data["updateTime"] == data["completeTime"]
    assert data["completeTime"] / 1000 - time.time() > 300  # the body runs on the virtual clock
    checked = verify(hit.headers, json.dumps(hit.body).encode(), KEY, replay=ReplayCache())
    assert checked.task_id == data["taskId"]


@pytest.mark.parametrize("sandbox", [{"time_scale": 0.002}], indirect=True)
def test_upload_times_use_the_same_clock(sandbox: SandboxServer) -> None:
    with api(sandbox) as http:
        answer = http.post(
            "/api/file-base64-upload", json={"base64Data": "aGVsbG8=", "uploadPath": "t"}
        ).json()["data"]
    uploaded = datetime.fromisoformat(answer["uploadedAt"].replace("Z", "+00:00")).timestamp()
    generated_ms = int(answer["fileName"].split("-", 1)[0])
    assert abs(uploaded * 1000 - generated_ms) < 1000  # name and time agree: one clock
    assert uploaded >= sandbox.state.clock.anchor_wall
