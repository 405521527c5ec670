"""A live gallery over a seeded ledger, a real sandbox for its re-runs, and Debian's Chromium.

The server, the ledger and the sandbox are shared by a module's tests (starting them is the slow
part); tests that change marks or spend say what they rely on.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from kie.client import AsyncKie
from kie.gallery.server import GalleryServer
from kie.sandbox.server import SandboxServer
from kie.store import Ledger
from tests.conftest import FAST_RETRY, client_settings, poll_policy, sandbox_config
from tests.gallery.seed import Seeded, seed

PAGE_SIZE = 12
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    root = tmp_path_factory.mktemp("gallery")
    ledger = Ledger(f"sqlite:///{root / 'ledger.db'}")
    yield seed(ledger, root / "media")
    ledger.close()


@pytest.fixture(scope="module")
def kie_sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(sandbox_config()) as server:
        yield server


@pytest.fixture(scope="module")
def live(
    seeded: Seeded, kie_sandbox: SandboxServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GalleryServer]:
    root = tmp_path_factory.mktemp("gallery-run")
    settings = client_settings(kie_sandbox)

    def client() -> AsyncKie:
        return AsyncKie(settings=settings, poll=poll_policy(), retry=FAST_RETRY, create_interval=None)

    with GalleryServer(
        seeded.ledger,
        home=root / "home",
        settings=settings,
        output_dir=root / "out",
        max_credits=100.0,
        client_factory=client,
        create_interval=0.0,
        page_size=PAGE_SIZE,
    ) as server:
        yield server


def signed_in(server: GalleryServer) -> httpx.Client:
    """An HTTP client holding the session cookie, as a browser has after opening the printed URL."""
    http = httpx.Client(base_url=server.base_url, follow_redirects=False, timeout=30)
    answer = http.get(f"/?token={server.guard.token}")
    assert answer.status_code == 303
    return http


def writes(server: GalleryServer) -> dict[str, str]:
    return {"x-csrf-token": server.guard.csrf, "origin": server.base_url}


def chromium_path() -> str:
    """Debian's Chromium (playwright cannot download browsers here); a skip with a reason elsewhere,
    a failure under KIE_TEST_REQUIRE_BROWSER=1 (as .ci/run sets it)."""
    path = os.environ.get("KIE_TEST_CHROMIUM", "/usr/bin/chromium")
    if Path(path).is_file() and os.access(path, os.X_OK):
        return path
    if os.environ.get("KIE_TEST_REQUIRE_BROWSER") == "1":
        pytest.fail(f"KIE_TEST_REQUIRE_BROWSER=1 but there is no Chromium at {path} (set KIE_TEST_CHROMIUM)")
    pytest.skip(f"browser tests need Chromium at {path} (apt-get install chromium, or set KIE_TEST_CHROMIUM)")


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    path = chromium_path()
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=path,
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1280, "height": 900},
        )
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser: Any, live: GalleryServer) -> Iterator[Any]:
    tab = browser.new_page()
    tab.set_default_timeout(15_000)
    tab.goto(live.url)
    try:
        yield tab
    finally:
        tab.close()


def screenshots_dir(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("KIE_SCREENSHOTS_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder
