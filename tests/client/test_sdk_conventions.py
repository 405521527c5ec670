"""SDK conventions both clients keep: the environment configures them, and every public call documents
each of its parameters (what `help(kie.Kie.generate)` shows)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import kie
from kie.client import AsyncKie, Kie
from kie.client._base import env_poll_scale
from kie.protocol.polling import PollPolicy
from kie.protocol.task import TaskStatus
from kie.sandbox.server import SandboxServer
from tests.conftest import TIME_SCALE

PUBLIC_METHODS = [
    "__init__",
    "generate",
    "submit",
    "wait",
    "download",
    "credits",
    "upload",
    "close",
    "get",
    "download_url",
]


@pytest.fixture
def sandbox_env(sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> SandboxServer:
    """Point clients built with no arguments at the sandbox, on its clock, as a user's shell would."""
    monkeypatch.setenv("KIE_API_KEY", sandbox.api_key)
    monkeypatch.setenv("KIE_BASE_URL", sandbox.url)
    monkeypatch.setenv("KIE_UPLOAD_BASE_URL", sandbox.url)
    monkeypatch.setenv("KIE_POLL_SCALE", str(TIME_SCALE))
    return sandbox


def counting_polls(seen: list[int]) -> Callable[[TaskStatus, int], None]:
    def on_status(status: TaskStatus, polls: int) -> None:
        seen.append(polls)

    return on_status


def test_kie_from_environment_polls_on_the_sandbox_clock(sandbox_env: SandboxServer, tmp_path: Path) -> None:
    polls: list[int] = []
    with Kie(create_interval=None) as client:
        assert client.config.poll.scale == TIME_SCALE
        gen = client.generate(
            "nano-banana-pro", prompt="a lighthouse", output_dir=tmp_path, on_status=counting_polls(polls)
        )
    assert gen.status.state is kie.TaskState.SUCCEEDED and gen.paths[0].exists()
    assert 1 <= polls[-1] <= 5
    assert sandbox_env.state.requests_for("recordInfo") == polls[-1]


async def test_async_kie_from_environment_polls_on_the_sandbox_clock(
    sandbox_env: SandboxServer, tmp_path: Path
) -> None:
    polls: list[int] = []
    async with AsyncKie(create_interval=None) as client:
        assert client.config.poll.scale == TIME_SCALE
        gen = await client.generate(
            "nano-banana-pro", prompt="a lighthouse", output_dir=tmp_path, on_status=counting_polls(polls)
        )
    assert gen.status.state is kie.TaskState.SUCCEEDED and gen.paths[0].exists()
    assert 1 <= polls[-1] <= 5
    assert sandbox_env.state.requests_for("recordInfo") == polls[-1]


async def test_async_on_submit_sees_the_task_before_any_poll(
    sandbox_env: SandboxServer, tmp_path: Path
) -> None:
    polls_at_submit: list[int] = []

    def on_submit(sub: kie.Submission) -> None:
        assert sub.task_id in sandbox_env.state.tasks
        polls_at_submit.append(sandbox_env.state.requests_for("recordInfo"))

    async with AsyncKie(create_interval=None) as client:
        await client.generate("nano-banana-pro", prompt="a fox", output_dir=tmp_path, on_submit=on_submit)
    assert polls_at_submit == [0] and sandbox_env.state.requests_for("recordInfo") >= 1


def test_an_explicit_poll_policy_wins_over_the_environment(sandbox_env: SandboxServer) -> None:
    with Kie(poll=PollPolicy(scale=0.5)) as client:
        assert client.config.poll.scale == 0.5


@pytest.mark.parametrize("raw", [None, "", "  "])
def test_unset_or_empty_poll_scale_is_real_time(monkeypatch: pytest.MonkeyPatch, raw: str | None) -> None:
    if raw is None:
        monkeypatch.delenv("KIE_POLL_SCALE", raising=False)
    else:
        monkeypatch.setenv("KIE_POLL_SCALE", raw)
    assert env_poll_scale() == 1.0


@pytest.mark.parametrize("raw", ["fast", "0", "-0.5", "nan", "inf", "1e400"])
@pytest.mark.parametrize("client_class", [Kie, AsyncKie])
def test_a_bad_poll_scale_is_one_sentence_naming_the_variable(
    sandbox_env: SandboxServer, monkeypatch: pytest.MonkeyPatch, raw: str, client_class: type[Any]
) -> None:
    monkeypatch.setenv("KIE_POLL_SCALE", raw)
    with pytest.raises(kie.ConfigurationError) as caught:
        client_class()
    message = str(caught.value)
    assert message == (
        f"KIE_POLL_SCALE must be a positive number such as 0.01, not {raw!r}; unset it for real time."
    )
    assert sandbox_env.api_key not in message


@pytest.mark.parametrize("client_class", [Kie, AsyncKie])
@pytest.mark.parametrize("method", PUBLIC_METHODS)
def test_public_methods_document_every_parameter(client_class: type[Any], method: str) -> None:
    function = getattr(client_class, method)
    doc = inspect.getdoc(function)
    assert doc, f"{client_class.__name__}.{method} has no docstring"
    parameters = [name for name in inspect.signature(function).parameters if name != "self"]
    if parameters:
        args = doc.split("Args:", 1)
        assert len(args) == 2, f"{client_class.__name__}.{method} has no Args section"
        missing = [name for name in parameters if f"{name}:" not in args[1]]
        assert missing == [], f"{client_class.__name__}.{method} does not document {missing}"
    if method not in ("__init__", "close"):
        assert "Returns:" in doc, f"{client_class.__name__}.{method} does not say what it returns"


def test_help_for_generate_explains_the_call() -> None:
    doc = inspect.getdoc(kie.Kie.generate) or ""
    assert "Raises:" in doc and "ValidationError" in doc and "nothing is spent" in doc
