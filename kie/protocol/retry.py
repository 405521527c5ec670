"""When a failed request may be sent again. The rules differ by request kind, because a create costs money.

Reads, uploads and downloads retry on network errors, 429, 455 and 5xx, with capped exponential backoff,
jitter and any `Retry-After`. A create is retried only when it certainly never reached Kie (the
connection was never established) or Kie certainly rejected it without effect (429, 455). Anything
else (a read timeout, a reset after the body was sent, a 5xx, a garbled answer) may have created a
paid task, so it becomes `SubmissionUnknownError` and is never resent automatically.

The sync and async clients both hand these predicates to tenacity; neither has retry logic of its own.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import httpx

from kie.errors import (
    APIStatusError,
    KieError,
    MaintenanceError,
    RateLimitError,
    ServerError,
    SubmissionUnknownError,
    TransportError,
)
from kie.protocol.envelope import MalformedResponse, RequestKind

# Failures raised before a single byte of the request left this machine.
NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


_RNG = random.Random()


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    initial: float = 0.5
    maximum: float = 20.0
    jitter: float = 0.5
    create_attempts: int = 4

    def attempts_for(self, kind: RequestKind) -> int:
        return self.create_attempts if kind == "create" else self.attempts

    def delay(
        self, attempt: int, retry_after: float | None = None, rng: random.Random | None = None
    ) -> float:
        """Seconds before attempt `attempt + 1` (attempt counts from 1); never less than Retry-After."""
        base = min(self.maximum, self.initial * 2.0 ** (attempt - 1))
        spread = (rng or _RNG).uniform(0, self.jitter * base)
        return max(base + spread, retry_after or 0.0)


def is_retryable(kind: RequestKind, exc: BaseException) -> bool:
    """May this request be sent again after `exc`?"""
    if kind == "create":
        return isinstance(exc, (*NEVER_SENT, RateLimitError, MaintenanceError))
    if isinstance(exc, (httpx.TransportError, MalformedResponse)):
        return True
    return isinstance(exc, (RateLimitError, MaintenanceError, ServerError))


def retry_after(exc: BaseException) -> float | None:
    return exc.retry_after if isinstance(exc, APIStatusError) else None


def final_error(
    kind: RequestKind, exc: BaseException, *, label: str, model: str | None = None
) -> BaseException:
    """The error to raise once retrying is over: a create whose fate is unknown says so explicitly."""
    if kind == "create" and not is_retryable("create", exc):
        ambiguous = isinstance(exc, (httpx.TransportError, MalformedResponse, ServerError))
        if ambiguous:
            return SubmissionUnknownError(
                f"The create request for {model or 'the task'} failed after it was sent ({_describe(exc)}); "
                "Kie may have created the task. It was not resent, so nothing is paid twice. "
                "Check it with `kie jobs list --state unknown` before submitting again.",
                model=model or "",
            )
    if isinstance(exc, KieError):
        return exc
    if isinstance(exc, httpx.TransportError):
        return TransportError(
            f"{label} at {_url_of(exc)} failed: {_describe(exc)}. Check the URL and your network, then "
            "try again."
        )
    if isinstance(exc, MalformedResponse):
        return TransportError(f"{label} failed: {exc}")
    return exc


def _url_of(exc: httpx.TransportError) -> str:
    """Where the request went, without its query (a URL is never a secret here, but keep it short)."""
    try:
        url = exc.request.url
    except RuntimeError:
        return "Kie"
    return str(url.copy_with(query=None))


def _describe(exc: BaseException) -> str:
    text = str(exc) or exc.__class__.__name__
    return f"{exc.__class__.__name__}: {text}" if text != exc.__class__.__name__ else text
