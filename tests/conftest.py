"""Shared fixtures: a real sandbox over real HTTP on a free loopback port, and clients pointed at it.

Tests never reach api.kie.ai: `no_real_kie` fails any test whose settings would point there.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from kie.client import AsyncKie, Kie
from kie.config import Settings, Timeouts
from kie.protocol.polling import PollPolicy
from kie.protocol.retry import RetryPolicy
from kie.sandbox.server import SandboxServer
from kie.sandbox.state import SandboxConfig

TIME_SCALE = 0.002
FAST_RETRY = RetryPolicy(attempts=4, initial=0.005, maximum=0.05, create_attempts=4)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads the developer's config or key, or writes to their data directory."""
    for name in (
        "KIE_API_KEY",
        "KIE_BASE_URL",
        "KIE_UPLOAD_BASE_URL",
        "KIE_CALLBACK_URL",
        "KIE_WEBHOOK_KEY",
        "KIE_STORE_URL",
        "KIE_MAX_CREDITS",
        "KIE_LOG",
        "KIE_POLL_SCALE",
        "KIE_UNREACHABLE_TIMEOUT",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KIE_CONFIG", str(tmp_path / "no-config.toml"))
    monkeypatch.setenv("KIE_HOME", str(tmp_path / "kie-home"))


def sandbox_config(**overrides: object) -> SandboxConfig:
    base: dict[str, object] = {
        "api_keys": ("sk-test-key-0123456789",),
        "time_scale": TIME_SCALE,
        "seed": 7,
        "max_image_side": 256,
        "duration_jitter": 0.1,
    }
    base.update(overrides)
    return SandboxConfig(**base)  # type: ignore[arg-type]


@pytest.fixture
def sandbox(request: pytest.FixtureRequest) -> Iterator[SandboxServer]:
    """A sandbox; parametrize indirectly with a dict of `SandboxConfig` overrides."""
    overrides = getattr(request, "param", {}) or {}
    with SandboxServer(sandbox_config(**overrides)) as server:
        yield server


def client_settings(sandbox: SandboxServer, **overrides: object) -> Settings:
    settings = Settings(
        api_key=sandbox.api_key,
        base_url=sandbox.url,
        upload_base_url=sandbox.url,
        timeouts=Timeouts(connect=2, read=5, write=5, pool=5, task_deadline=60),
    )
    return settings.with_(**overrides)


def poll_policy(scale: float = TIME_SCALE) -> PollPolicy:
    return PollPolicy(scale=scale, not_visible_grace=30.0)


@pytest.fixture
def client(sandbox: SandboxServer) -> Iterator[Kie]:
    with Kie(
        settings=client_settings(sandbox), poll=poll_policy(), retry=FAST_RETRY, create_interval=None
    ) as kie:
        yield kie


@pytest.fixture
async def aclient(sandbox: SandboxServer) -> AsyncIterator[AsyncKie]:
    async with AsyncKie(
        settings=client_settings(sandbox), poll=poll_policy(), retry=FAST_RETRY, create_interval=None
    ) as kie:
        yield kie


def postgres_url() -> str | None:
    return os.environ.get("KIE_TEST_POSTGRES_URL")


def require_postgres() -> str:
    """PostgreSQL URL for store tests; skipped with a reason locally, mandatory under .ci/run."""
    url = postgres_url()
    if url:
        return url
    if os.environ.get("KIE_TEST_REQUIRE_POSTGRES"):
        pytest.fail("KIE_TEST_REQUIRE_POSTGRES is set but KIE_TEST_POSTGRES_URL is not")
    pytest.skip(
        "PostgreSQL tests need KIE_TEST_POSTGRES_URL (e.g. postgresql+psycopg://postgres@127.0.0.1/test)"
    )


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty ledger on each backend: SQLite in a temp dir, PostgreSQL in a throwaway schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.db'}"
        return
    import secrets

    import sqlalchemy

    base = require_postgres()
    schema = "kie_test_" + secrets.token_hex(4)
    admin = sqlalchemy.create_engine(base)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in base else "?"
    try:
        yield f"{base}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()
