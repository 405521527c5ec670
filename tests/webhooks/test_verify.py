"""`kie.webhooks.verify`: signature, timestamps both ways, replays, and every family's task id location."""

from __future__ import annotations

import json
import time

import pytest

from kie.webhooks import ReplayCache, WebhookError, sign, verify

KEY = "whk-test-key"


def signed(body: dict, task_id: str, timestamp: int, key: str = KEY) -> tuple[dict[str, str], bytes]:
    headers = {"X-Webhook-Timestamp": str(timestamp), "X-Webhook-Signature": sign(key, task_id, timestamp)}
    return headers, json.dumps(body).encode()


@pytest.mark.parametrize(
    "body",
    [
        {
            "code": 200,
            "data": {"taskId": "t1", "state": "success"},
        },  # Market, 4o, Flux, Veo, Midjourney, Luma
        {"code": 200, "data": {"callbackType": "complete", "task_id": "t1", "data": []}},  # Suno, Runway
        {"code": 200, "msg": "success", "data": {"result_video_url": "u"}, "taskId": "t1"},  # Aleph
        {"code": 400, "msg": "flagged", "data": None, "taskId": "t1"},  # Aleph failure
    ],
)
def test_valid_callbacks_of_every_shape(body: dict) -> None:
    now = time.time()
    headers, raw = signed(body, "t1", int(now))
    result = verify(headers, raw, KEY, replay=ReplayCache(), now=now)
    assert result.task_id == "t1" and result.body == body


def test_header_case_does_not_matter() -> None:
    now = int(time.time())
    headers, raw = signed({"data": {"taskId": "t1"}}, "t1", now)
    lowered = {k.lower(): v for k, v in headers.items()}
    assert verify(lowered, raw, KEY, replay=None).task_id == "t1"


def test_forged_signature_and_wrong_key() -> None:
    now = int(time.time())
    headers, raw = signed({"data": {"taskId": "t1"}}, "t1", now, key="attacker")
    with pytest.raises(WebhookError) as caught:
        verify(headers, raw, KEY, replay=None)
    assert caught.value.reason == "signature" and KEY not in str(caught.value)


def test_signature_for_another_task_is_refused() -> None:
    now = int(time.time())
    headers, _ = signed({}, "other-task", now)
    with pytest.raises(WebhookError, match="signature"):
        verify(headers, json.dumps({"data": {"taskId": "t1"}}).encode(), KEY, replay=None)


@pytest.mark.parametrize("offset", [-301, 301])
def test_stale_and_future_timestamps(offset: int) -> None:
    now = time.time()
    headers, raw = signed({"data": {"taskId": "t1"}}, "t1", int(now) + offset)
    with pytest.raises(WebhookError) as caught:
        verify(headers, raw, KEY, replay=None, now=now)
    assert caught.value.reason == "timestamp"
    assert verify(headers, raw, KEY, tolerance=None, replay=None, now=now).task_id == "t1"


def test_replay_is_refused_once_seen() -> None:
    cache = ReplayCache()
    now = time.time()
    headers, raw = signed({"data": {"taskId": "t1"}}, "t1", int(now))
    verify(headers, raw, KEY, replay=cache, now=now)
    with pytest.raises(WebhookError) as caught:
        verify(headers, raw, KEY, replay=cache, now=now + 1)
    assert caught.value.reason == "replay"


@pytest.mark.parametrize("raw", [b"not json", b"[1,2]", b'{"data": {}}'])
def test_bad_bodies(raw: bytes) -> None:
    with pytest.raises(WebhookError) as caught:
        verify({"X-Webhook-Timestamp": "1", "X-Webhook-Signature": "x"}, raw, KEY, replay=None)
    assert caught.value.reason == "body"


def test_missing_headers() -> None:
    with pytest.raises(WebhookError, match="signature headers"):
        verify({}, json.dumps({"data": {"taskId": "t1"}}).encode(), KEY, replay=None)
