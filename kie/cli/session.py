"""Where a command's work goes: Kie.ai with the user's key, or the built-in sandbox when asked for.

There is no silent fallback. A command that would spend and finds no key stops and says how to get
one or how to try the sandbox; the sandbox is only ever used with `--sandbox`. Sandbox work is kept in
a ledger of its own (`KIE_HOME/sandbox/ledger.db`), so fake "done" rows can never make a later real
run skip rows it has not paid for.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kie.cli._common import err_console, fail, poll_scale
from kie.config import Settings, load_settings
from kie.errors import KieError

if TYPE_CHECKING:
    from kie.sandbox.server import SandboxServer
    from kie.store import Ledger

# The sandbox's clock in the CLI: a 30 s image takes 3 s, which keeps trying kie quick.
SANDBOX_TIME_SCALE = 0.1

NO_KEY = (
    "No Kie.ai API key: set KIE_API_KEY to the key from your Kie.ai dashboard, or pass --sandbox to try "
    "the built-in sandbox without an account or credits."
)


def settings_or_fail(**overrides: Any) -> Settings:
    try:
        return load_settings(**overrides)
    except KieError as exc:
        fail(exc)


def sandbox_store_url(home: Path) -> str:
    folder = home / "sandbox"
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'ledger.db'}"


def store_url_for(settings: Settings, store: str | None, sandbox: bool) -> str:
    """The ledger a command reads and writes. `--store` and `KIE_STORE_URL` name the real ledger; the
    sandbox's ledger is separate and fixed, so the two can never mix."""
    if sandbox:
        if store:
            fail(
                "--store names the real ledger and cannot be combined with --sandbox; sandbox work is "
                f"kept in {settings.home / 'sandbox' / 'ledger.db'}."
            )
        return sandbox_store_url(settings.home)
    from kie.store import default_store_url

    return store or settings.store_url or default_store_url(settings.home)


def open_ledger(settings: Settings, store: str | None = None, *, sandbox: bool = False) -> Ledger:
    from kie.store import Ledger

    try:
        return Ledger(store_url_for(settings, store, sandbox))
    except KieError as exc:
        fail(exc)


@dataclass
class Session:
    """Settings pointed at Kie or at a running sandbox, and the poll scale that goes with them."""

    settings: Settings
    sandbox: SandboxServer | None
    scale: float

    @property
    def is_sandbox(self) -> bool:
        return self.sandbox is not None

    def tag(self, data: dict[str, Any]) -> dict[str, Any]:
        """Mark `--json` answers from the sandbox, so no script mistakes them for real results."""
        return {**data, "sandbox": True} if self.is_sandbox else data


@contextlib.contextmanager
def session(use_sandbox: bool, *, quiet: bool = False, settings: Settings | None = None) -> Iterator[Session]:
    """Kie with the user's key, or (only with `--sandbox`) an in-process sandbox for the command."""
    settings = settings or settings_or_fail()
    if not use_sandbox:
        if not settings.api_key:
            fail(NO_KEY)
        yield Session(settings, None, poll_scale())
        return
    from kie.sandbox.server import SandboxServer
    from kie.sandbox.state import SandboxConfig

    server = SandboxServer(SandboxConfig(time_scale=SANDBOX_TIME_SCALE)).start()
    if not quiet:
        err_console.print(
            f"[cyan]--sandbox: using the built-in sandbox at {server.url}; results are generated locally, "
            "nothing is spent, and nothing goes to your real ledger.[/]"
        )
    pointed = settings.with_(api_key=server.api_key, base_url=server.url, upload_base_url=server.url)
    try:
        yield Session(pointed, server, SANDBOX_TIME_SCALE)
    finally:
        server.stop()
