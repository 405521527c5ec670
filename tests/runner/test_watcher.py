"""The batch runner's shared watcher: one heap for every running task, over real HTTP to the sandbox."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import pytest

from kie import catalog
from kie.client import AsyncKie
from kie.errors import KieError, NotFoundError
from kie.errors import TimeoutError as KieTimeoutError
from kie.protocol.flows import Watch
from kie.protocol.task import TaskState, TaskStatus
from kie.runner.watcher import Watcher
from kie.sandbox.server import SandboxServer
from tests.conftest import FAST_RETRY, client_settings, poll_policy

pytestmark = pytest.mark.parametrize(
    "sandbox", [{"rate_limit": None, "status_rate_limit": None}], indirect=True
)
MODEL = "nano-banana-pro"


def client_for(sandbox: SandboxServer, connections: int = 8) -> AsyncKie:
    return AsyncKie(
        settings=client_settings(sandbox),
        poll=poll_policy(),
        retry=FAST_RETRY,
        create_interval=None,
        max_connections=connections,
    )


async def watch_all(
    client: AsyncKie, task_ids: list[str], *, drop: set[str] = frozenset(), deadline: float = 60.0
) -> dict[str, list[TaskStatus | KieError]]:
    """Watch every task until each is settled; return every outcome handed out, per job."""
    outcomes: dict[str, list[TaskStatus | KieError]] = {}
    watcher = Watcher(
        client, lambda job, outcome: outcomes.setdefault(job, []).append(outcome), concurrency=4
    )
    spec = catalog.get(MODEL)
    for n, task_id in enumerate(task_ids):
        watch = Watch.begin(spec, task_id, policy=client.config.poll, now=time.monotonic(), deadline=deadline)
        watcher.add(f"job-{n}", watch)
    for n, task_id in enumerate(task_ids):
        if task_id in drop:
            assert watcher.drop(f"job-{n}")
    runner = asyncio.create_task(watcher.run())
    while len(watcher):
        await asyncio.sleep(0.01)
    watcher.close()
    await asyncio.wait_for(runner, 10)
    return outcomes


async def test_every_task_is_settled_exactly_once(sandbox: SandboxServer) -> None:
    async with client_for(sandbox) as client:
        subs = [await client.submit(MODEL, {"prompt": f"owl {n}"}) for n in range(40)]
        outcomes = await watch_all(client, [s.task_id for s in subs])
    assert sorted(outcomes) == sorted(f"job-{n}" for n in range(40))
    for (status,) in outcomes.values():  # exactly one outcome per job
        assert isinstance(status, TaskStatus) and status.state is TaskState.SUCCEEDED and status.result_urls
    # The adaptive schedule, not a fixed loop: few status reads per task.
    assert sandbox.state.requests_for("recordInfo") <= 40 * 4


async def test_a_dropped_task_is_never_polled_or_settled(sandbox: SandboxServer) -> None:
    async with client_for(sandbox) as client:
        subs = [await client.submit(MODEL, {"prompt": f"fox {n}"}) for n in range(3)]
        dropped = subs[1].task_id
        outcomes = await watch_all(client, [s.task_id for s in subs], drop={dropped})
    assert sorted(outcomes) == ["job-0", "job-2"]
    polled = {r.get("taskId") for r in sandbox.state.request_log if r.get("endpoint") == "recordInfo"}
    assert dropped not in polled


async def test_failure_deadline_and_unknown_task_are_outcomes(sandbox: SandboxServer) -> None:
    sandbox.state.inject("generation", "fail_generation", fail_code="400", fail_msg="flagged")
    async with client_for(sandbox) as client:
        failed = await client.submit(MODEL, {"prompt": "flagged"})
        (outcome,) = (await watch_all(client, [failed.task_id]))["job-0"]
        assert isinstance(outcome, TaskStatus) and outcome.state is TaskState.FAILED
        assert outcome.fail_msg == "flagged"

        # Kie never shows the task: inside the grace window the watch keeps asking until its deadline...
        client.config.poll = replace(client.config.poll, not_visible_grace=1e6)
        (timeout,) = (await watch_all(client, ["no-such-task"], deadline=0.2))["job-0"]
        assert isinstance(timeout, KieTimeoutError) and "no-such-task" in str(timeout)
        # ...and after the grace window it is reported as unknown to Kie.
        client.config.poll = replace(client.config.poll, not_visible_grace=0.0)
        (missing,) = (await watch_all(client, ["no-such-task"]))["job-0"]
    assert isinstance(missing, NotFoundError)
    polls = [r for r in sandbox.state.request_log if r.get("taskId") == "no-such-task"]
    assert len(polls) >= 3  # several polls before the deadline, one after the grace window
