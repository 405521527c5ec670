"""Where named faults meet the wire: status reads of every family, and result downloads.

Status faults sit in front of the families' own status routes, so every family meets them the same way:
a task planned to meet a transient one (`status.transient_null`, `status.550`, `status.401`,
`status.402`) gets it as the answer to its first status read; a task that failed with `status.501` or
`status.408` has every status read answered with that envelope code, as Kie documents for recordInfo.
The same layer adds the newer documented recordInfo fields when `--recordinfo-fields 2026-09` is on.

Download faults strike the first download of a task's result files, one per request, in plan order.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Message, Receive, Scope, Send

from kie.sandbox import faults as named
from kie.sandbox import recorded
from kie.sandbox.http import DropConnection, authorise, envelope
from kie.sandbox.state import SandboxState, SandboxTask, StoredFile

Handler = Callable[[Request], Awaitable[Response]]

# Families whose docs list these envelope codes on their status read; elsewhere the failure shows in
# the record only.
TERMINAL_CODE_APIS = {
    "status.501": frozenset({"market", "flux-kontext", "luma", "midjourney"}),
    "status.408": frozenset({"market"}),
}
ERROR_PAGE = (
    b"<!DOCTYPE html><html><head><title>Error</title></head>"
    b"<body><h1>Something went wrong</h1><p>Please try again later.</p></body></html>"
)
ACCESS_DENIED = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code>'
    b"<Message>Request has expired</Message></Error>"
)


def with_status_faults(state: SandboxState, routes: Sequence[BaseRoute]) -> list[BaseRoute]:
    """The families' routes, their GET routes (status reads) behind the status fault layer."""
    wrapped: list[BaseRoute] = []
    for route in routes:
        if isinstance(route, Route) and route.methods and "GET" in route.methods:
            handler: Handler = route.endpoint
            wrapped.append(
                Route(route.path, _status_layer(state, handler), methods=list(route.methods), name=route.name)
            )
        else:
            wrapped.append(route)
    return wrapped


def _status_layer(state: SandboxState, handler: Handler) -> Handler:
    async def endpoint(request: Request) -> Response:
        task_id = request.query_params.get("taskId")
        with state.lock:
            task = state.tasks.get(task_id) if task_id else None
        if task is None:
            return await handler(request)
        key_id, denied = authorise(request, state)
        if denied is None and key_id is not None:
            for name, (code, msg) in named.TRANSIENT_STATUS.items():
                if state.fire(task, name):
                    state.count(f"{request.url.path.removeprefix('/api/v1/')}:{name}", key_id)
                    return envelope(state, code, msg)
        response = await handler(request)
        return _after(state, task, request, response)

    return endpoint


def _after(state: SandboxState, task: SandboxTask, request: Request, response: Response) -> Response:
    """A terminal fault's envelope code, or the newer recordInfo fields, on a family's answer."""
    terminal = [
        name
        for name in named.TERMINAL_CODES
        if name in task.injected and task.terminal and task.api in TERMINAL_CODE_APIS[name]
    ]
    newer = (
        state.config.recordinfo_fields == recorded.NEWER_FIELDS
        and task.api == "market"
        and request.url.path.endswith("/recordInfo")
    )
    if not terminal and not newer:
        return response
    try:
        body = json.loads(bytes(response.body))
    except ValueError:
        return response
    if not isinstance(body, dict) or body.get("code") != 200 or not isinstance(body.get("data"), dict):
        return response
    data: dict[str, Any] = body["data"]
    if newer:
        data.update(recorded.newer_record_fields(state, task))
    if terminal:
        code, msg = named.TERMINAL_CODES[terminal[0]]
        return envelope(state, code, msg, data)
    return JSONResponse(body, status_code=response.status_code)


def download_fault(state: SandboxState, path: str) -> str | None:
    """The named fault the download of result file `path` meets (recorded as met), else None."""
    parts = path.split("/")
    if len(parts) < 3 or parts[0] != "r":
        return None
    with state.lock:
        task = state.tasks.get(parts[1])
        if task is None:
            return None
        for name in named.DOWNLOAD_FAULTS:
            if name != "download.expired" and state.fire(task, name):
                return name
    return None


def fault_response(state: SandboxState, name: str, stored: StoredFile, data: bytes) -> Response:
    if name == "download.500":
        return Response("Internal Server Error", status_code=500, media_type="text/plain")
    if name == "download.403":
        return Response(ACCESS_DENIED, status_code=403, media_type="application/xml")
    if name == "download.wrong_bytes":
        return Response(ERROR_PAGE, media_type=stored.content_type)
    stall = state.config.scaled(state.config.stall_seconds) if name == "download.stall" else 0.0
    return CutShort(data, stored.content_type, stall)


class CutShort(Response):
    """Announce the whole file, send half of it, (stall,) then cut the connection."""

    def __init__(self, data: bytes, content_type: str, stall: float) -> None:
        super().__init__(status_code=200)
        self.data = data
        self.kind = content_type
        self.stall = stall

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", self.kind.encode()),
                    (b"content-length", str(len(self.data)).encode()),
                ],
            }
        )
        half = self.data[: len(self.data) // 2]
        await send({"type": "http.response.body", "body": half, "more_body": True})
        if self.stall > 0:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(_disconnected(receive), timeout=self.stall)
        raise DropConnection()


async def _disconnected(receive: Receive) -> None:
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            return
