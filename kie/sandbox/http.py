"""HTTP pieces every sandbox route uses: envelopes, auth, faults, and the dropped connection."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from kie.sandbox.state import Fault, SandboxState

UNAUTHORIZED = "Unauthorized – Authentication failed."


class DropConnection(Exception):
    """Raised after the response has started, so the server closes the socket mid-answer."""


class DroppedResponse(Response):
    """Announce a body, then cut the connection: the client cannot know what happened."""

    def __init__(self) -> None:
        super().__init__(status_code=200)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"64")],
            }
        )
        raise DropConnection()


class _HideDrops(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, DropConnection)


logging.getLogger("uvicorn.error").addFilter(_HideDrops())


def envelope(
    state: SandboxState, code: int, msg: str, data: Any = None, *, upload: bool = False
) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "msg": msg, "data": data}
    if upload:
        body = {"success": code == 200, **body}
        if code != 200:
            body.pop("data")
    status = code if (state.config.strict_http and code != 200 and 100 <= code < 600) else 200
    return JSONResponse(body, status_code=status)


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return None


def authorise(
    request: Request, state: SandboxState, *, upload: bool = False
) -> tuple[str | None, Response | None]:
    """The caller's key id, or the 401 answer Kie gives (HTTP 200 unless strict mode)."""
    key = bearer(request)
    if key is None or key not in state.config.api_keys or state.key_id(key) in state.revoked:
        msg = "Authentication failed: Invalid API Key" if upload else UNAUTHORIZED
        return None, envelope(state, 401, msg, upload=upload)
    return state.key_id(key), None


REJECTIONS = {
    "429": (429, "The request rate is too high; the request was rejected and not queued."),
    "433": (433, "Request Limit – Sub-key Usage Exceeds Limit"),
    "455": (455, "Service unavailable: the system is under maintenance. Please try again later."),
    "500": (500, "Internal Error, Please try again later"),
    "505": (505, "The feature is disabled."),
}


async def request_fault(
    state: SandboxState, endpoint: str, *, upload: bool = False
) -> tuple[Fault | None, Response | None]:
    """Apply a planned or random request-level fault. `drop_after_create` is returned for the caller."""
    fault = state.take_fault(
        endpoint, ("429", "433", "455", "500", "505", "drop", "slow", "malformed", "drop_after_create")
    )
    if fault is None:
        return None, None
    if fault.kind == "slow":
        await asyncio.sleep(state.config.scaled(fault.delay or 30.0))
        return None, None
    if fault.kind in REJECTIONS:
        code, msg = REJECTIONS[fault.kind]
        return fault, envelope(state, code, msg, upload=upload)
    if fault.kind == "drop":
        return fault, DroppedResponse()
    if fault.kind == "malformed":
        return fault, malformed()
    return fault, None


def malformed() -> Response:
    """A proxy's error page with HTTP 200: not an envelope at all."""
    return Response(b"<html><body>502 Bad Gateway</body></html>", status_code=200, media_type="text/html")


def public_url(request: Request, configured: str | None) -> str:
    if configured:
        return configured.rstrip("/")
    return str(request.base_url).rstrip("/")
