"""Jobs an agent asked for, run by the same ledger and batch engine as `kie batch run`.

Each `generate` call is a batch `mcp-…` whose rows are the job positions. The server runs each batch
as a background task in its own process, so polling and downloads carry on after the tool call has
returned, after the client gave up waiting, and (resumed from the ledger on start) after a restart.
A wait is only a view of the ledger: cancelling it never cancels a job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from kie.client import AsyncKie
from kie.mcp.consent import BATCH_PREFIX
from kie.mcp.models import FileOut, JobOut
from kie.runner.engine import BatchRunner, RunOptions
from kie.store import (
    ABANDONED,
    DONE,
    FAILED,
    PENDING,
    REJECTED,
    RUNNING,
    SUBMITTING,
    SUCCEEDED,
    UNKNOWN,
    Ledger,
    Record,
)
from kie.store.schema import batches, files, jobs

log = logging.getLogger("kie.mcp")

# A job an agent no longer needs to wait for: finished, or `unknown` (a create whose outcome was lost,
# which only a person resolves, with `kie jobs resolve`).
SETTLED = (DONE, FAILED, REJECTED, ABANDONED, UNKNOWN)
UNFINISHED = (PENDING, SUBMITTING, RUNNING, SUCCEEDED)
_COST = func.coalesce(jobs.c.actual_credits, jobs.c.estimated_credits, 0.0)
_CHARGED = (PENDING, SUBMITTING, RUNNING, SUCCEEDED, DONE, UNKNOWN)

Progress = Callable[[int, int], Awaitable[None]]


def is_mcp_batch(batch_id: str | None) -> bool:
    return bool(batch_id) and str(batch_id).startswith(BATCH_PREFIX)


def spent_since(ledger: Ledger, since: float) -> float:
    """Credits committed by MCP jobs created since `since` (pending intent counts: it is consented)."""
    query = select(func.coalesce(func.sum(_COST), 0.0)).where(
        jobs.c.batch_id.startswith(BATCH_PREFIX, autoescape=True),
        jobs.c.created_at >= since,
        jobs.c.state.in_(_CHARGED),
    )
    with ledger.engine.connect() as c:
        return float(c.execute(query).scalar_one())


def committed(ledger: Ledger) -> float:
    """Credits spent or in flight across the whole ledger, plus MCP intent not yet submitted."""
    spent, flight = ledger.spend()
    query = select(func.coalesce(func.sum(_COST), 0.0)).where(
        jobs.c.batch_id.startswith(BATCH_PREFIX, autoescape=True), jobs.c.state == PENDING
    )
    with ledger.engine.connect() as c:
        pending = float(c.execute(query).scalar_one())
    return spent + flight + pending


def start_of_today() -> float:
    return datetime.now().replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


def unfinished_batches(ledger: Ledger) -> list[str]:
    query = (
        select(jobs.c.batch_id)
        .where(jobs.c.batch_id.startswith(BATCH_PREFIX, autoescape=True), jobs.c.state.in_(UNFINISHED))
        .distinct()
    )
    with ledger.engine.connect() as c:
        return [str(b) for b in c.execute(query).scalars()]


def files_of(ledger: Ledger, ids: Sequence[str]) -> dict[str, list[Record]]:
    owned: dict[str, list[Record]] = {i: [] for i in ids}
    if not ids:
        return owned
    query = select(files).where(files.c.job_id.in_(list(ids))).order_by(files.c.job_id, files.c.idx)
    with ledger.engine.connect() as c:
        for row in c.execute(query).mappings():
            owned[row["job_id"]].append(dict(row))
    return owned


def file_by_sha(ledger: Ledger, sha256: str) -> Record | None:
    query = select(files).where(files.c.sha256 == sha256.lower()).order_by(files.c.id.desc()).limit(1)
    with ledger.engine.connect() as c:
        row = c.execute(query).mappings().first()
    return None if row is None else dict(row)


def find_jobs(
    ledger: Ledger,
    *,
    ids: Sequence[str] | None = None,
    batch_id: str | None = None,
    state: str | None = None,
    model: str | None = None,
    since: float | None = None,
    query: str | None = None,
    limit: int = 20,
) -> list[Record]:
    """Jobs from the ledger, newest first unless asked for by id or batch (then in their order)."""
    statement = select(jobs)
    if ids is not None:
        statement = statement.where(jobs.c.id.in_(list(ids)))
    if batch_id is not None:
        statement = statement.where(jobs.c.batch_id == batch_id)
    if state is not None:
        statement = statement.where(jobs.c.state == state)
    if model is not None:
        statement = statement.where(jobs.c.model == model)
    if since is not None:
        statement = statement.where(jobs.c.created_at >= since)
    if query:
        statement = statement.where(jobs.c.prompt.contains(query, autoescape=True))
    if ids is not None or batch_id is not None:
        statement = statement.order_by(jobs.c.created_at, jobs.c.row_line, jobs.c.id)
    else:
        statement = statement.order_by(jobs.c.created_at.desc())
    with ledger.engine.connect() as c:
        found: list[Record] = [dict(row) for row in c.execute(statement.limit(limit)).mappings()]
    if ids is not None:
        order = {job_id: n for n, job_id in enumerate(ids)}
        found.sort(key=lambda job: order.get(job["id"], len(order)))
    return found


def job_out(job: Record, owned: Iterable[Record]) -> JobOut:
    seconds = None
    if job["submitted_at"] and job["completed_at"]:
        seconds = round(job["completed_at"] - job["submitted_at"], 3)
    error = job["error_message"] if job["state"] in (FAILED, REJECTED, UNKNOWN, ABANDONED) else None
    if job["state"] == UNKNOWN:
        error = (
            f"{error or 'the create may or may not have reached Kie'}; it is never resent on its own: "
            f"a person decides with `kie jobs resolve {job['id']}`"
        )
    return JobOut(
        job_id=job["id"],
        batch_id=job["batch_id"],
        position=job["row_line"],
        label=job["output_name"],
        model=job["model"],
        state=job["state"],
        task_id=job["task_id"],
        credits_estimated=job["estimated_credits"],
        credits_charged=job["actual_credits"],
        seconds=seconds,
        files=[
            FileOut(
                path=f["path"],
                sha256=f["sha256"],
                size=f["size"],
                mime=f["content_type"],
                uri=f"kie://files/{f['sha256']}",
            )
            for f in owned
        ],
        error=error,
    )


def views(ledger: Ledger, found: Sequence[Record]) -> list[JobOut]:
    owned = files_of(ledger, [job["id"] for job in found])
    return [job_out(job, owned[job["id"]]) for job in found]


class JobEngine:
    """The MCP server's background batches, one asyncio task per batch, on one shared client."""

    def __init__(
        self,
        ledger: Ledger,
        client_factory: Callable[[], AsyncKie],
        *,
        create_interval: float,
        deadline: float,
        callback_url: str | None,
        on_change: Callable[[str], Coroutine[Any, Any, None]] | None = None,
    ) -> None:
        self.ledger = ledger
        self.client_factory = client_factory
        self.create_interval = create_interval
        self.deadline = deadline
        self.callback_url = callback_url
        self.on_change = on_change
        self.client: AsyncKie | None = None
        self.errors: dict[str, str] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._again: set[str] = set()
        self._notices: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Event()

    # -- lifetime ---------------------------------------------------------------------------------
    async def start(self) -> None:
        """Open the client and take up every MCP batch a previous run left unfinished."""
        self.client = self.client_factory()
        self._changed = asyncio.Event()
        for batch_id in unfinished_batches(self.ledger):
            self.ensure_running(batch_id)

    async def close(self) -> None:
        """Stop the background work; the ledger keeps every job, and the next start resumes them."""
        tasks = list(self._tasks.values()) + list(self._notices)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        # Hand back the polls this process held, so the next start (or another worker) takes them
        # at once instead of after their lease runs out.
        self.ledger.sign_off()
        if self.client is not None:
            await self.client.close()
            self.client = None

    def running(self, batch_id: str) -> bool:
        task = self._tasks.get(batch_id)
        return task is not None and not task.done()

    def ensure_running(self, batch_id: str) -> None:
        """Run the batch in the background unless it already runs (then look at it again once the
        current run ends, for jobs it gave up on)."""
        if self.running(batch_id):
            self._again.add(batch_id)
            return
        self._tasks[batch_id] = asyncio.get_running_loop().create_task(self._run(batch_id))

    async def _run(self, batch_id: str) -> None:
        assert self.client is not None
        try:
            while True:
                batch = self.ledger.batch(batch_id)
                if batch is None:
                    return
                options = dict(batch["options"] or {})
                run = RunOptions(
                    output_dir=Path(batch["output_dir"]),
                    max_credits=options.get("approved_credits"),
                    create_interval=self.create_interval,
                    deadline=self.deadline,
                    callback_url=self.callback_url,
                )
                runner = BatchRunner(self.ledger, self.client, batch_id, run, self._event)
                result = await runner.run()
                if result.stopped_reason:
                    self.errors[batch_id] = result.stopped_reason
                if batch_id not in self._again:
                    return
                self._again.discard(batch_id)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the batch stays in the ledger and resumes on the next start
            log.exception("MCP batch %s stopped", batch_id)
            self.errors[batch_id] = str(exc)
        finally:
            self._tasks.pop(batch_id, None)
            self._wake(None)

    # -- news -------------------------------------------------------------------------------------
    def _event(self, kind: str, data: Mapping[str, Any]) -> None:
        self._wake(data.get("job"))

    def _wake(self, job_id: str | None) -> None:
        self._changed.set()
        self._changed = asyncio.Event()
        if self.on_change is not None and job_id:
            notice = asyncio.get_running_loop().create_task(self.on_change(str(job_id)))
            self._notices.add(notice)
            notice.add_done_callback(self._notices.discard)

    async def wait(
        self,
        job_ids: Sequence[str],
        timeout: float,
        *,
        until: tuple[str, ...] = SETTLED,
        progress: Progress | None = None,
        heartbeat: float = 10.0,
    ) -> list[Record]:
        """Wait until every job is in `until` or `timeout` passes, reporting progress on each change
        and at least every `heartbeat` seconds. Returns the jobs as the ledger has them."""
        started = time.monotonic()
        end = started + max(0.0, timeout)
        last_report = started
        reported: int | None = None
        while True:
            found = list(self.ledger.jobs_by_ids(list(job_ids)).values())
            for job in found:
                if job["state"] in UNFINISHED and job["batch_id"] and not self.running(job["batch_id"]):
                    self.ensure_running(job["batch_id"])
            done = sum(1 for job in found if job["state"] in until)
            now = time.monotonic()
            if progress is not None and (done != reported or now - last_report >= heartbeat):
                await progress(done, len(job_ids))
                reported, last_report = done, now
            if done >= len(job_ids) or now >= end:
                return found
            changed = self._changed
            # Woken by this process's runners; the short cap also sees changes made by others.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(changed.wait(), min(end - now, heartbeat, 0.5))


def batch_options(plan_hash: str, credits: float, session: str, key: str | None) -> dict[str, Any]:
    return {
        "request_hash": plan_hash,
        "approved_credits": credits,
        "session": session,
        "key_given": bool(key),
    }


def batch_row(ledger: Ledger, batch_id: str) -> Record | None:
    with ledger.engine.connect() as c:
        row = c.execute(select(batches).where(batches.c.id == batch_id)).mappings().first()
    return None if row is None else dict(row)
