"""A callback receiver for tests: a real HTTP server on loopback that records what it is sent."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from kie.sandbox.server import free_socket
from kie.webhooks import Receiver


@dataclass
class Received:
    body: dict[str, Any]
    headers: dict[str, str]


@dataclass
class CallbackReceiver:
    fail_first: int = 0
    received: list[Received] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def __post_init__(self) -> None:
        self._socket = free_socket()
        host, port = self._socket.getsockname()[:2]
        self.url = f"http://{host}:{port}/hook"
        app = Starlette(routes=[Route("/hook", self._hook, methods=["POST"])])
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
        self._thread = threading.Thread(target=lambda: self._server.run(sockets=[self._socket]), daemon=True)

    async def _hook(self, request: Request) -> JSONResponse:
        body = json.loads(await request.body())
        with self.arrived:
            self.received.append(Received(body, dict(request.headers)))
            failing = len(self.received) <= self.fail_first
            self.arrived.notify_all()
        if failing:
            return JSONResponse({"code": 500}, status_code=500)
        return JSONResponse({"code": 200, "msg": "success"})

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        with self.arrived:
            if not self.arrived.wait_for(lambda: len(self.received) >= count, timeout):
                raise AssertionError(f"expected {count} callbacks, got {len(self.received)}")
            return list(self.received)

    def __enter__(self) -> CallbackReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)
        self._socket.close()


class Served:
    """A `kie.webhooks.Receiver` served on a free loopback port in a thread."""

    def __init__(self, receiver: Receiver, app: Starlette | None = None) -> None:
        """Serve `receiver.app()`, or `app` when the receiver is mounted inside a larger one."""
        self.receiver = receiver
        self.socket = free_socket()
        host, port = self.socket.getsockname()[:2]
        self.url = f"http://{host}:{port}"
        self.server = uvicorn.Server(
            uvicorn.Config(app or receiver.app(), log_level="warning", lifespan="on")
        )
        self.thread = threading.Thread(target=lambda: self.server.run(sockets=[self.socket]), daemon=True)

    def __enter__(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + 5
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.socket.close()


def until(check: Callable[[], object], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.01)
    raise AssertionError("condition not reached")
