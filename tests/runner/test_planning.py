"""Planning in chunks while the batch runs: creates start early, and a kill mid-planning loses nothing."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kie.client import AsyncKie
from kie.runner.engine import BatchRunner, RunOptions
from kie.runner.plan import batch_id_for, plan_batch
from kie.sandbox.server import SandboxServer
from kie.store import DONE, UNKNOWN, Ledger
from tests.conftest import FAST_RETRY, client_settings, poll_policy
from tests.runner.test_batch import write_batch
from tests.runner.test_crash import KIE, run_env


def test_the_runner_takes_up_jobs_planned_after_it_started(
    sandbox: SandboxServer, store_url: str, tmp_path: Path
) -> None:
    ledger = Ledger(store_url)
    first = plan_batch(write_batch(tmp_path / "first.jsonl", 4)).jobs
    later = [j for j in plan_batch(write_batch(tmp_path / "later.jsonl", 10)).jobs if j not in first]
    first_done = threading.Event()
    done: list[str] = []

    def planner(on_chunk: Callable[[int], None], stop: Callable[[], bool]) -> int:
        added = ledger.add_jobs_chunked("b", first, source=None, output_dir=str(tmp_path), options={})
        on_chunk(added)
        first_done.wait(60)  # the second chunk exists only once the first chunk's jobs are done
        more = ledger.add_jobs_chunked("b", later)
        on_chunk(more)
        ledger.mark_planned("b")
        return added + more

    def on_event(kind: str, data: Any) -> None:
        if kind == "done":
            done.append(data["row"])
            if len(done) == len(first):
                first_done.set()

    async def main() -> None:
        async with AsyncKie(
            settings=client_settings(sandbox), poll=poll_policy(), retry=FAST_RETRY, create_interval=None
        ) as client:
            options = RunOptions(output_dir=tmp_path / "out", create_interval=0.0)
            await BatchRunner(ledger, client, "b", options, on_event, planner).run()

    asyncio.run(main())
    assert ledger.counts("b") == {DONE: 10}
    assert set(done[:4]) == {j.row_key for j in first}
    assert set(done[4:]) == {j.row_key for j in later} and len(done) == 10
    batch = ledger.batch("b")
    assert batch is not None and batch["planned_at"] is not None


ROWS = 6000
BUDGET = 60  # twelve creates at 5 credits each: the test is about planning, not generating


@pytest.mark.parametrize("sandbox", [{"rate_limit": None, "status_rate_limit": None}], indirect=True)
def test_a_kill_mid_planning_is_resumed_with_every_row_once(
    sandbox: SandboxServer, store_url: str, tmp_path: Path
) -> None:
    batch = write_batch(tmp_path / "big.jsonl", ROWS)
    env = run_env(sandbox, store_url, tmp_path)
    command = [KIE, "batch", "run", str(batch), "-o", str(tmp_path / "out"), "--rate", "100/1", "--json"]
    command += ["--max-credits", str(BUDGET)]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:  # kill it as soon as a chunk is planned and planning goes on
        event = json.loads(line)
        if event.get("event") == "planning" and event["planned"] > 0 and not event["complete"]:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    ledger = Ledger(store_url)
    batch_id = batch_id_for(batch)
    cut = ledger.batch(batch_id)
    assert cut is not None and cut["planned_at"] is None
    assert 0 < len(ledger.jobs(batch_id=batch_id)) < ROWS

    resumed = subprocess.run(
        [KIE, "batch", "resume", batch_id, "--json"], env=env, capture_output=True, text=True, timeout=600
    )
    assert resumed.returncode in (0, 2, 3, 4), resumed.stderr[-2000:]
    finished = ledger.batch(batch_id)
    assert finished is not None and finished["planned_at"] is not None
    jobs = ledger.jobs(batch_id=batch_id)
    assert sorted(str(j["row_key"]) for j in jobs) == sorted(f"r{n}" for n in range(ROWS))
    created = Counter(str(t.input["prompt"]) for t in sandbox.state.tasks.values())
    assert created and max(created.values()) == 1, "a row was paid for twice"
    sent = [j for j in jobs if j["state"] in (DONE, UNKNOWN)]
    assert len(sent) >= len(created) - len([j for j in jobs if j["state"] == UNKNOWN])
    assert ledger.spend(batch_id)[0] <= BUDGET
