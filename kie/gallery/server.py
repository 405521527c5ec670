"""Serving the gallery: in the foreground for `kie gallery`, or in a thread for tests and benchmarks.

The socket is bound before the app is built, so the port (which the `Host` check and the printed URL
need) is known even when the system picked it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from kie.gallery.actions import Actions
from kie.gallery.app import GalleryConfig, create_app
from kie.gallery.queries import PAGE, Gallery
from kie.gallery.security import Guard
from kie.store import Ledger

if TYPE_CHECKING:
    from kie.client import AsyncKie
    from kie.config import Settings


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host.strip("[]"), port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


def cache_dir_for(ledger: Ledger, home: Path) -> Path:
    """Thumbnails and the search index live beside a SQLite ledger, else under KIE_HOME."""
    database = ledger.engine.url.database or ""
    if ledger.engine.dialect.name == "sqlite" and database not in ("", ":memory:"):
        return Path(database).resolve().parent / "gallery"
    return home / "gallery"


class GalleryServer:
    def __init__(
        self,
        ledger: Ledger,
        *,
        home: Path,
        settings: Settings | None,
        output_dir: Path,
        max_credits: float | None,
        host: str = "127.0.0.1",
        port: int = 0,
        sandbox: bool = False,
        client_factory: Callable[[], AsyncKie] | None = None,
        poll_scale: float = 1.0,
        create_interval: float = 0.5,
        page_size: int = PAGE,
    ) -> None:
        import uvicorn

        self.ledger = ledger
        self._socket = bind(host, port)
        self.port = int(self._socket.getsockname()[1])
        shown = f"[{host.strip('[]')}]" if ":" in host else host
        extra = () if is_loopback(host) else (shown,)
        self.guard = Guard(self.port, extra_hosts=extra)
        self.base_url = f"http://{'127.0.0.1' if is_loopback(host) else shown}:{self.port}"
        self.cache_dir = cache_dir_for(ledger, home)
        self.gallery = Gallery(ledger, self.cache_dir)
        usd = settings.usd_per_credit if settings is not None else 0.005
        self.actions = Actions(
            ledger,
            self.gallery,
            settings=settings,
            output_dir=output_dir,
            max_credits=max_credits,
            client_factory=client_factory,
            poll_scale=poll_scale,
            create_interval=create_interval,
            usd_per_credit=usd,
        )
        self.app = create_app(
            GalleryConfig(
                ledger=ledger,
                guard=self.guard,
                cache_dir=self.cache_dir,
                actions=self.actions,
                usd_per_credit=usd,
                page_size=page_size,
                sandbox=sandbox,
            )
        )
        self._server = uvicorn.Server(
            uvicorn.Config(
                self.app, log_level="warning", access_log=False, lifespan="on", timeout_keep_alive=30
            )
        )
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The address to open: it carries the session token, exchanged for a cookie on first visit."""
        return f"{self.base_url}/?token={self.guard.token}"

    @property
    def thumbs(self) -> Any:
        return self.app.state.thumbs

    def serve(self) -> None:
        """In the foreground until Ctrl-C."""
        try:
            asyncio.run(self._server.serve(sockets=[self._socket]))
        except KeyboardInterrupt:
            pass
        finally:
            self._socket.close()
            self.gallery.close()

    def start(self) -> GalleryServer:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._server.config.setup_event_loop = lambda: None  # type: ignore[method-assign]
            original = self._server.startup

            async def startup(sockets: list[socket.socket] | None = None) -> None:
                await original(sockets)
                ready.set()

            self._server.startup = startup  # type: ignore[method-assign]
            loop.run_until_complete(self._server.serve(sockets=[self._socket]))
            loop.close()

        self._thread = threading.Thread(target=run, name="kie-gallery", daemon=True)
        self._thread.start()
        if not ready.wait(15):
            raise RuntimeError("the gallery did not start within 15 s")
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=15)
        self._socket.close()
        self.gallery.close()

    def __enter__(self) -> GalleryServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
