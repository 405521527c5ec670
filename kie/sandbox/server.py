"""Running the sandbox: in a background thread (tests, `kie generate --sandbox`) or in the foreground.

`SandboxServer` binds a free loopback port before starting, so its URL is known at once and two test
sessions never collide.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import threading
from types import TracebackType

import uvicorn

from kie.sandbox.app import Sandbox
from kie.sandbox.state import SandboxConfig, SandboxState


def sample_key() -> str:
    return "sk-sandbox-" + secrets.token_hex(12)


def free_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    # proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on accepted sockets whose proto says TCP,
    # and without it every answer waits ~40 ms for a delayed ACK.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


class SandboxServer:
    """A sandbox on a loopback port in a daemon thread.

    with SandboxServer(SandboxConfig(api_keys=("k",), time_scale=0.001)) as sandbox:
        client = Kie("k", base_url=sandbox.url, upload_base_url=sandbox.url)
    """

    def __init__(
        self, config: SandboxConfig | None = None, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.config = config or SandboxConfig(api_keys=(sample_key(),))
        if not self.config.api_keys:
            self.config.api_keys = (sample_key(),)
        self._socket = free_socket(host, port)
        bound_host, bound_port = self._socket.getsockname()[:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        self.url = f"http://{shown}:{bound_port}"
        if self.config.public_url is None:
            self.config.public_url = self.url
        self.sandbox = Sandbox(self.config)
        self._server = uvicorn.Server(
            uvicorn.Config(
                self.sandbox.app,
                log_level="warning",
                access_log=False,
                lifespan="on",
                timeout_keep_alive=30,
                limit_concurrency=None,
            )
        )
        self._thread: threading.Thread | None = None

    @property
    def state(self) -> SandboxState:
        return self.sandbox.state

    @property
    def api_key(self) -> str:
        return self.config.api_keys[0]

    def start(self) -> SandboxServer:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._server.config.setup_event_loop = lambda: None  # type: ignore[method-assign]
            original_startup = self._server.startup

            async def startup(sockets: list[socket.socket] | None = None) -> None:
                await original_startup(sockets)
                ready.set()

            self._server.startup = startup  # type: ignore[method-assign]
            loop.run_until_complete(self._server.serve(sockets=[self._socket]))
            loop.close()

        self._thread = threading.Thread(target=run, name="kie-sandbox", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the sandbox did not start within 10 s")
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._socket.close()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def serve_forever(server: SandboxServer) -> None:
    """Foreground server for `kie sandbox`; returns cleanly on Ctrl-C."""
    uvicorn_server = server._server
    try:
        asyncio.run(uvicorn_server.serve(sockets=[server._socket]))
    except KeyboardInterrupt:
        pass
    finally:
        server._socket.close()
