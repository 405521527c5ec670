"""Callbacks (§3.4, §3.5), fault injection and rate limits of the sandbox, seen from the wire."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time

import httpx
import pytest

from kie.client._base import sync_transport
from kie.sandbox.server import SandboxServer
from tests.receiver import CallbackReceiver

BODY = {"model": "nano-banana-pro", "input": {"prompt": "a fox"}}


def api(sandbox: SandboxServer) -> httpx.Client:
    return httpx.Client(
        base_url=sandbox.url,
        headers={"Authorization": f"Bearer {sandbox.api_key}"},
        timeout=5,
        transport=sync_transport(),
    )


@pytest.mark.parametrize("sandbox", [{"webhook_key": "whk-secret"}], indirect=True)
def test_success_callback_body_and_signature(sandbox: SandboxServer) -> None:
    with CallbackReceiver() as receiver, api(sandbox) as http:
        task_id = http.post("/api/v1/jobs/createTask", json={**BODY, "callBackUrl": receiver.url}).json()[
            "data"
        ]["taskId"]
        (hit,) = receiver.wait_for(1)
    body = hit.body
    assert body["code"] == 200 and body["msg"] == "Playground task completed successfully."
    data = body["data"]
    assert data["taskId"] == task_id and data["state"] == "success" and data["creditsConsumed"] == 18
    assert json.loads(data["resultJson"])["resultUrls"] and isinstance(data["costTime"], int)
    assert json.loads(data["param"])["callBackUrl"] == receiver.url
    timestamp = hit.headers["x-webhook-timestamp"]
    expected = base64.b64encode(
        hmac.new(b"whk-secret", f"{task_id}.{timestamp}".encode(), hashlib.sha256).digest()
    ).decode()
    assert hit.headers["x-webhook-signature"] == expected
    assert abs(int(timestamp) - time.time()) < 60


def test_failure_callback(sandbox: SandboxServer) -> None:
    sandbox.state.inject("generation", "fail_generation", fail_code="400", fail_msg="Your prompt was flagged")
    with CallbackReceiver() as receiver, api(sandbox) as http:
        http.post("/api/v1/jobs/createTask", json={**BODY, "callBackUrl": receiver.url})
        (hit,) = receiver.wait_for(1)
    assert hit.body["code"] == 501 and hit.body["msg"] == "Playground task failed."
    data = hit.body["data"]
    assert data["state"] == "fail" and data["failCode"] == "400" and data["creditsConsumed"] == 0
    assert "x-webhook-signature" not in hit.headers  # no key configured, no signature
    assert sandbox.state.spent == 0


def test_callback_retries_after_receiver_failures(sandbox: SandboxServer) -> None:
    with CallbackReceiver(fail_first=2) as receiver, api(sandbox) as http:
        http.post("/api/v1/jobs/createTask", json={**BODY, "callBackUrl": receiver.url})
        hits = receiver.wait_for(3)
    assert [h.body["data"]["taskId"] for h in hits] == [hits[0].body["data"]["taskId"]] * 3
    attempts = [c.attempt for c in sandbox.state.callbacks]
    assert attempts[:3] == [1, 2, 3] and [c.status for c in sandbox.state.callbacks[:3]] == [500, 500, 200]


def test_injected_delivery_failure_and_duplicates(sandbox: SandboxServer) -> None:
    sandbox.state.inject("callback", "callback_fail")
    sandbox.state.inject("callback", "callback_duplicate")
    with CallbackReceiver() as receiver, api(sandbox) as http:
        http.post("/api/v1/jobs/createTask", json={**BODY, "callBackUrl": receiver.url})
        hits = receiver.wait_for(2)
    assert hits[0].body == hits[1].body
    errors = [c.error for c in sandbox.state.callbacks]
    assert errors[0] == "injected delivery failure"


def test_callbacks_only_go_to_loopback(sandbox: SandboxServer) -> None:
    with api(sandbox) as http:
        http.post("/api/v1/jobs/createTask", json={**BODY, "callBackUrl": "https://example.com/hook"})
    deadline = time.monotonic() + 5
    while not sandbox.state.callbacks and time.monotonic() < deadline:
        time.sleep(0.01)
    (record,) = sandbox.state.callbacks
    assert record.status is None and "loopback" in (record.error or "")


@pytest.mark.parametrize(
    ("kind", "code"), [("429", 429), ("433", 433), ("455", 455), ("500", 500), ("505", 505)]
)
def test_rejection_faults_answer_and_create_nothing(sandbox: SandboxServer, kind: str, code: int) -> None:
    sandbox.state.inject("createTask", kind)  # type: ignore[arg-type]
    with api(sandbox) as http:
        rejected = http.post("/api/v1/jobs/createTask", json=BODY)
        accepted = http.post("/api/v1/jobs/createTask", json=BODY)
    assert rejected.status_code == 200 and rejected.json()["code"] == code
    assert accepted.json()["code"] == 200 and len(sandbox.state.tasks) == 1


def test_dropped_connection_after_create_creates_the_task(sandbox: SandboxServer) -> None:
    sandbox.state.inject("createTask", "drop_after_create")
    with api(sandbox) as http, pytest.raises(httpx.RemoteProtocolError):
        http.post("/api/v1/jobs/createTask", json=BODY)
    assert len(sandbox.state.tasks) == 1  # Kie has the task, the client has no id: the ambiguous case


def test_malformed_and_slow_answers(sandbox: SandboxServer) -> None:
    sandbox.state.inject("recordInfo", "malformed")
    sandbox.state.inject("credit", "slow", delay=100.0)  # 100 s x 0.002 = 0.2 s
    with api(sandbox) as http:
        garbled = http.get("/api/v1/jobs/recordInfo", params={"taskId": "x"})
        started = time.monotonic()
        slow = http.get("/api/v1/chat/credit")
        took = time.monotonic() - started
    assert garbled.status_code == 200 and garbled.headers["content-type"].startswith("text/html")
    assert slow.json()["code"] == 200 and took >= 0.2


def test_faults_can_be_injected_over_http(sandbox: SandboxServer) -> None:
    with api(sandbox) as http:
        assert http.post("/_sandbox/faults", json={"endpoint": "credit", "kind": "455"}).json()["ok"]
        assert http.get("/api/v1/chat/credit").json()["code"] == 455
        assert http.get("/api/v1/chat/credit").json()["code"] == 200


@pytest.mark.parametrize("sandbox", [{"fault_rates": {"createTask:429": 0.5}, "seed": 3}], indirect=True)
def test_random_fault_rates_are_seeded(sandbox: SandboxServer) -> None:
    with api(sandbox) as http:
        codes = [http.post("/api/v1/jobs/createTask", json=BODY).json()["code"] for _ in range(40)]
    assert 5 < codes.count(429) < 35 and codes.count(200) == len(sandbox.state.tasks)


@pytest.mark.parametrize("sandbox", [{"rate_limit": (20, 10.0), "time_scale": 1.0}], indirect=True)
def test_rate_limit_holds_under_concurrent_load(sandbox: SandboxServer) -> None:
    results: list[int] = []
    lock = threading.Lock()

    def fire() -> None:
        with api(sandbox) as http:
            code = http.post("/api/v1/jobs/createTask", json=BODY).json()["code"]
        with lock:
            results.append(code)

    threads = [threading.Thread(target=fire) for _ in range(60)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(200) == 20 and results.count(429) == 40
    assert len(sandbox.state.tasks) == 20  # rejected requests were not queued


@pytest.mark.parametrize("sandbox", [{"max_running": 2, "rate_limit": None}], indirect=True)
def test_concurrency_cap_queues_tasks(sandbox: SandboxServer) -> None:
    with api(sandbox) as http:
        ids = [http.post("/api/v1/jobs/createTask", json=BODY).json()["data"]["taskId"] for _ in range(6)]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not all(sandbox.state.tasks[i].terminal for i in ids):
        time.sleep(0.01)
    histories = [[s for s, _ in sandbox.state.tasks[i].history] for i in ids]
    assert any("queuing" in h for h in histories)
    assert all(h[-1] == "success" for h in histories)
