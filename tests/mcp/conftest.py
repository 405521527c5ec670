"""An MCP server over a real sandbox (real HTTP), reached with the SDK's in-memory client.

`make_app` builds a `KieApp` on a ledger URL; building a second one on the same URL is a server
restart: a new process's view of the same durable ledger.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kie.client import AsyncKie
from kie.mcp.app import KieApp
from kie.mcp.limits import Limits
from kie.sandbox.server import SandboxServer
from kie.store import Ledger
from tests.conftest import FAST_RETRY, client_settings, poll_policy

MakeApp = Callable[..., KieApp]


@pytest.fixture
def make_app(sandbox: SandboxServer, tmp_path: Path, store_url: str) -> Iterator[MakeApp]:
    ledgers: list[Ledger] = []
    settings = client_settings(sandbox).with_(home=tmp_path / "home")

    def make(limits: Limits | None = None, **options: Any) -> KieApp:
        ledger = Ledger(store_url)
        ledgers.append(ledger)

        def client() -> AsyncKie:
            return AsyncKie(settings=settings, poll=poll_policy(), retry=FAST_RETRY, create_interval=None)

        return KieApp(
            settings,
            ledger,
            limits or Limits(output_dir=tmp_path / "out"),
            client,
            create_interval=0.0,
            **options,
        )

    yield make
    for ledger in ledgers:
        ledger.close()
