"""The ledger's cost per job on the straight path: counted statements, not timings."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from sqlalchemy import event

from kie.client import AsyncKie
from kie.runner.engine import BatchRunner, RunOptions
from kie.runner.plan import plan_batch
from kie.sandbox.server import SandboxServer
from kie.store import DONE, Ledger
from tests.conftest import FAST_RETRY, client_settings, poll_policy
from tests.runner.test_batch import write_batch


def statements_of_a_run(sandbox: SandboxServer, url: str, folder: Path, rows: int) -> dict[str, int]:
    """What one polling run of `rows` fresh jobs sends: job statements and status-read slots apart."""
    ledger = Ledger(url)
    batch = write_batch(folder / f"b{rows}.jsonl", rows)
    batch_id = f"b{rows}"
    ledger.ensure_batch(batch_id, source=str(batch), output_dir=str(folder / batch_id), options={})
    ledger.add_jobs(batch_id, plan_batch(batch).jobs)
    counted = {"job": 0, "create limiter": 0, "read gate": 0}

    def count(_c: Any, _cursor: Any, sql: str, params: Any, _ctx: Any, _many: bool) -> None:
        if sql.lstrip().upper().startswith("BEGIN"):
            return
        values = params.values() if isinstance(params, dict) else params or ()
        if "status-reads" in list(values):
            counted["read gate"] += 1
        elif "kie_limiters" in sql:
            counted["create limiter"] += 1
        else:
            counted["job"] += 1

    event.listen(ledger.engine, "before_cursor_execute", count)

    async def main() -> None:
        async with AsyncKie(
            settings=client_settings(sandbox), poll=poll_policy(), retry=FAST_RETRY, create_interval=None
        ) as client:
            options = RunOptions(output_dir=folder / batch_id, create_interval=0.001)
            await BatchRunner(ledger, client, batch_id, options).run()

    asyncio.run(main())
    event.remove(ledger.engine, "before_cursor_execute", count)
    assert ledger.counts(batch_id) == {DONE: rows}
    ledger.close()
    return counted


def test_a_job_costs_at_most_ten_statements(sandbox: SandboxServer, store_url: str, tmp_path: Path) -> None:
    small = statements_of_a_run(sandbox, store_url, tmp_path, 8)
    large = statements_of_a_run(sandbox, store_url, tmp_path, 40)
    # Each further job (claim, running, result, file name, file row, done and their events) costs at
    # most ten statements; a run's start and end are paid once. The shared limiters are counted
    # apart: create slots are reserved several at a time, status reads one slot per read.
    per_job = (large["job"] - small["job"]) / (40 - 8)
    assert per_job <= 10, (small, large)
    assert large["create limiter"] <= 40 / 4, large
    assert large["job"] <= 10 * 40 + 40, large  # and what a run adds around its jobs stays small
    assert large["read gate"] > 0  # the shared status-read limit is counted apart, and it was used
