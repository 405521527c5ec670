"""`kie.AsyncKie`: the same flows over asyncio, and many generations sharing one pool."""

from __future__ import annotations

from pathlib import Path

import pytest

import kie
from kie.client import AsyncKie
from kie.sandbox.server import SandboxServer
from tests.conftest import FAST_RETRY, client_settings, poll_policy


async def test_async_generate(aclient: AsyncKie, sandbox: SandboxServer, tmp_path: Path) -> None:
    gen = await aclient.generate("nano-banana-pro", {"prompt": "an owl"}, output_dir=tmp_path)
    assert gen.results[0].path.exists() and await gen.results[0].aread() == gen.results[0].read()
    assert sandbox.state.requests_for("createTask") == 1


async def test_async_errors_match_sync(aclient: AsyncKie, sandbox: SandboxServer) -> None:
    sandbox.state.inject("createTask", "drop_after_create")
    with pytest.raises(kie.SubmissionUnknownError):
        await aclient.submit("nano-banana-pro", {"prompt": "x"})
    assert len(sandbox.state.tasks) == 1
    sandbox.state.inject("generation", "fail_generation")
    with pytest.raises(kie.TaskFailedError):
        await aclient.generate("nano-banana-pro", {"prompt": "y"})


@pytest.mark.parametrize("sandbox", [{"rate_limit": None, "status_rate_limit": None}], indirect=True)
async def test_200_concurrent_generations_share_one_pool(sandbox: SandboxServer, tmp_path: Path) -> None:
    async with AsyncKie(
        settings=client_settings(sandbox),
        poll=poll_policy(),
        retry=FAST_RETRY,
        create_interval=None,
        max_connections=20,
    ) as client:
        results = await client.generate_many(
            [("nano-banana-pro", {"prompt": f"scene {n}"}) for n in range(200)], output_dir=tmp_path
        )
    assert all(isinstance(r, kie.Generation) for r in results), [
        r for r in results if not isinstance(r, kie.Generation)
    ][:3]
    assert len({r.task_id for r in results if isinstance(r, kie.Generation)}) == 200
    assert len(sandbox.state.tasks) == 200 and sandbox.state.requests_for("createTask") == 200
    api_ports = {
        r["client"] for r in sandbox.state.request_log if r["endpoint"] in ("createTask", "recordInfo")
    }
    assert len(api_ports) <= 20  # one bounded pool served every API request
    assert len(list(tmp_path.iterdir())) == 200
