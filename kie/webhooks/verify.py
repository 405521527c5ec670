"""Verifying Kie's webhook signature, framework-free.

Kie signs `taskId + "." + timestamp` (base64 HMAC-SHA256 with your webhook key, kie-api.md §3.5). It does
**not** sign the body, so a valid signature proves only that Kie sent *a* callback for that task at that
time. kie therefore treats a verified callback as a hint and re-reads the task from the API; the body's
URLs and state are never trusted on their own.

What `verify` adds on top of the bare HMAC: a timestamp window on both sides (stale and future), and a
replay cache so the same (taskId, timestamp) pair is accepted once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kie.errors import KieError

DEFAULT_TOLERANCE = 300.0


class WebhookError(KieError):
    """A callback failed verification; `reason` is one of: signature, timestamp, replay, body."""

    def __init__(self, message: str, *, reason: str, task_id: str | None = None) -> None:
        super().__init__(message, task_id=task_id)
        self.reason = reason


@dataclass
class ReplayCache:
    """Remembers verified (taskId, timestamp) pairs for `window` seconds; thread-safe."""

    window: float = 2 * DEFAULT_TOLERANCE
    _seen: dict[tuple[str, int], float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def first_time(self, key: tuple[str, int], now: float) -> bool:
        with self._lock:
            if len(self._seen) > 10_000:
                self._seen = {k: t for k, t in self._seen.items() if now - t < self.window}
            seen = self._seen.get(key)
            if seen is not None and now - seen < self.window:
                return False
            self._seen[key] = now
            return True


@dataclass(frozen=True)
class VerifiedCallback:
    task_id: str
    timestamp: int | None
    body: dict[str, Any]


def sign(key: str, task_id: str, timestamp: int) -> str:
    digest = hmac.new(key.encode(), f"{task_id}.{timestamp}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def task_id_of(body: Mapping[str, Any]) -> str | None:
    """The task id wherever a family puts it: data.taskId, data.task_id, taskId, task_id."""
    data = body.get("data")
    for source in (data if isinstance(data, Mapping) else {}, body):
        for key in ("taskId", "task_id"):
            value = source.get(key)
            if isinstance(value, str) and value:
                return value
    return None


def parse_body(raw_body: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw_body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise WebhookError("The callback body is not JSON.", reason="body") from exc
    if not isinstance(body, dict):
        raise WebhookError("The callback body is not a JSON object.", reason="body")
    return body


_DEFAULT_REPLAY = ReplayCache()


def verify(
    headers: Mapping[str, str],
    raw_body: bytes,
    key: str,
    tolerance: float | None = DEFAULT_TOLERANCE,
    *,
    replay: ReplayCache | None = _DEFAULT_REPLAY,
    now: float | None = None,
) -> VerifiedCallback:
    """Check a callback's signature, timestamp and freshness; return its task id and body.

    `headers` may use any capitalisation. `tolerance=None` disables the timestamp window (not advised).
    Raises `WebhookError` with a `reason`; never echoes the key.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    body = parse_body(raw_body)
    task_id = task_id_of(body)
    if task_id is None:
        raise WebhookError("The callback names no task id.", reason="body")
    signature = lowered.get("x-webhook-signature")
    stamp = lowered.get("x-webhook-timestamp")
    if not signature or not stamp or not stamp.strip().lstrip("-").isdigit():
        raise WebhookError(
            "The callback carries no valid signature headers.", reason="signature", task_id=task_id
        )
    timestamp = int(stamp)
    expected = sign(key, task_id, timestamp)
    if not hmac.compare_digest(expected.encode(), signature.strip().encode()):
        raise WebhookError("The callback signature does not match.", reason="signature", task_id=task_id)
    current = time.time() if now is None else now
    if tolerance is not None and abs(current - timestamp) > tolerance:
        side = "old" if timestamp < current else "in the future"
        raise WebhookError(f"The callback timestamp is too {side}.", reason="timestamp", task_id=task_id)
    if replay is not None and not replay.first_time((task_id, timestamp), current):
        raise WebhookError("The callback was already received (replay).", reason="replay", task_id=task_id)
    return VerifiedCallback(task_id, timestamp, body)
