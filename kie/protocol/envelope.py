"""Kie's `{code, msg, data}` envelope and what each code means.

Kie answers business errors with HTTP 200, so success is decided by the envelope `code`, never by the
HTTP status alone. Some responses (docs examples, the upload host) say `message` instead of `msg`, or add
`success: false`; all are accepted. When the HTTP status itself is an error and the body carries no
envelope code (a proxy's 502 page), the HTTP status stands in for it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, Literal

from kie.errors import (
    APIStatusError,
    AuthenticationError,
    FeatureDisabledError,
    InsufficientCreditsError,
    MaintenanceError,
    NotFoundError,
    RateLimitError,
    ServerError,
    ValidationError,
)

RequestKind = Literal["create", "read", "upload", "download"]


@dataclass(frozen=True)
class ApiRequest:
    """An HTTP request described as data. The clients add the base URL and the key; nothing here is IO.

    `kind` drives the retry rules: a `create` costs money and is never resent when its fate is unknown.
    """

    method: str
    path: str
    kind: RequestKind = "read"
    params: Mapping[str, Any] = field(default_factory=dict)
    json: Any = None
    files: Mapping[str, Any] | None = None
    data: Mapping[str, Any] | None = None
    host: Literal["api", "upload"] = "api"
    label: str = ""

    @property
    def name(self) -> str:
        return self.label or f"{self.method} {self.path}"


@dataclass(frozen=True)
class Envelope:
    code: int
    msg: str
    data: Any
    http_status: int = 200
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.code == 200


class MalformedResponse(Exception):
    """The body is not a Kie envelope. For a create this means the outcome is unknown."""

    def __init__(self, http_status: int, snippet: str) -> None:
        super().__init__(f"HTTP {http_status} with a body that is not a Kie envelope: {snippet!r}")
        self.http_status = http_status


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header: delta-seconds, milliseconds, or an HTTP date."""
    if not value:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text).timestamp()
        except (TypeError, ValueError, IndexError):
            return None
        import time

        return max(0.0, when - (now if now is not None else time.time()))
    if seconds > 10_000:  # some servers send milliseconds
        seconds /= 1000.0
    return max(0.0, min(seconds, 600.0))


def parse_envelope(http_status: int, body: bytes, headers: Mapping[str, str] | None = None) -> Envelope:
    """Decode any api.kie.ai response into an `Envelope`; raise `MalformedResponse` if it is not one."""
    retry_after = parse_retry_after((headers or {}).get("retry-after"))
    try:
        payload = json.loads(body) if body else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        payload = None
    if not isinstance(payload, dict) or ("code" not in payload and "success" not in payload):
        if http_status >= 400:
            return Envelope(http_status, f"HTTP {http_status}", None, http_status, retry_after)
        raise MalformedResponse(http_status, body[:120].decode("utf-8", "replace"))
    msg = payload.get("msg")
    if msg is None:
        msg = payload.get("message", "")
    raw_code = payload.get("code")
    try:
        code = int(raw_code) if raw_code is not None else (200 if payload.get("success") else 500)
    except (TypeError, ValueError):
        code = 500
    if payload.get("success") is False and code == 200:
        code = 500
    if http_status >= 400 and code == 200:
        code = http_status
    return Envelope(code, str(msg), payload.get("data"), http_status, retry_after)


_ERRORS: dict[int, type[APIStatusError]] = {
    401: AuthenticationError,
    402: InsufficientCreditsError,
    404: NotFoundError,
    429: RateLimitError,
    433: RateLimitError,
    455: MaintenanceError,
    505: FeatureDisabledError,
}

_ADVICE: dict[int, str] = {
    401: "check KIE_API_KEY, the key is missing or wrong.",
    402: "top up your Kie.ai credits, then resume.",
    429: "slow down: nothing was created and it is safe to retry later.",
    433: "this sub-key reached its usage cap, raise it in the Kie dashboard.",
    455: "Kie.ai is in maintenance and nothing was created, try again later.",
    505: "this feature is disabled on Kie.ai for now.",
}


def error_for(env: Envelope, *, task_id: str | None = None, job_id: str | None = None) -> Exception:
    """The exception a failed envelope stands for; 5xx codes map to `ServerError`."""
    advice = _ADVICE.get(env.code, "")
    said = (env.msg or "no message").strip().rstrip(".")
    # One sentence: Kie's words, then what to do (they often end in a full stop of their own).
    message = f"Kie.ai answered {env.code} ({said})" + (f"; {advice}" if advice else ".")
    if env.code in (400, 422):
        return ValidationError(message, code=env.code, task_id=task_id, job_id=job_id)
    cls = _ERRORS.get(env.code)
    if cls is None:
        cls = ServerError if env.code >= 500 else APIStatusError
    return cls(
        message,
        code=env.code,
        http_status=env.http_status,
        task_id=task_id,
        job_id=job_id,
        retry_after=env.retry_after,
    )


def require_ok(env: Envelope, *, task_id: str | None = None, job_id: str | None = None) -> Any:
    """Return `data` of a successful envelope, or raise the typed error."""
    if not env.ok:
        raise error_for(env, task_id=task_id, job_id=job_id)
    return env.data
