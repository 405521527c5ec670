"""`kie worker`: one of any number of processes, on any number of machines, sharing one ledger.

The ledger is the queue. A worker runs a `BatchRunner` for every batch that has work, and every rule
that keeps "never twice" true lives in the ledger, not here:

- a create is claimed (`claim_for_submit`, a fenced compare-and-set) after its slot in the account's
  shared limiter, which on PostgreSQL reads the database clock;
- a running task has one poller (`claim_polls`), on a lease every heartbeat renews; a worker that dies
  stops renewing, and the others take its tasks over when the lease lapses (at once, for a dead process
  on the same host);
- a succeeded task has one downloader (`claim_download`);
- the budget is checked in the intent transaction, so N workers together stay under it.

What the worker adds is the choice of what to work on: batches by priority (highest first, then
oldest), with only the top priority that still has rows to create allowed to create, while every batch
with paid tasks in flight keeps being watched and saved. A paused batch creates nothing; a cancelled one
abandons its pending rows. SIGTERM drains: no new creates, running work gets `drain_timeout` to finish,
and whatever is left is handed back to the other workers at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.exc import DBAPIError

from kie.client import AsyncKie
from kie.runner.engine import STOP_DRAIN, BatchRunner, RunOptions, RunResult
from kie.store import PENDING, RUNNING, SUBMITTING, SUCCEEDED, Ledger, Record
from kie.store.ledger import HEARTBEAT

EventHook = Callable[[str, Mapping[str, Any]], None]

# After a runner ends, its batch is not taken up again for this long: a paused batch with rows left, or
# one whose last tasks another worker holds, would otherwise be started and ended in a loop.
COOLDOWN = 5.0


@dataclass
class WorkerOptions:
    output_root: Path | None = None
    concurrency: int = 100
    batch_ids: tuple[str, ...] = ()
    create_interval: float = 0.5
    create_window: float | None = 10.0
    deadline: float = 30 * 60.0
    unreachable_timeout: float = 180.0
    drain_timeout: float = 30.0
    until_idle: bool = False  # stop once no batch has work (scripts, tests, a nightly cron)
    tick: float = 1.0  # how often the ledger is asked for batches with work


@dataclass
class WorkerResult:
    batches: dict[str, RunResult] = field(default_factory=dict)
    drained: bool = False


class Worker:
    def __init__(
        self,
        ledger: Ledger,
        client: AsyncKie,
        options: WorkerOptions,
        on_event: EventHook | None = None,
    ) -> None:
        self.ledger = ledger
        self.client = client
        self.options = options
        self.on_event = on_event or (lambda kind, data: None)
        self._runners: dict[str, tuple[BatchRunner, asyncio.Task[RunResult]]] = {}
        self._gates: dict[str, asyncio.Event] = {}
        self._ended: dict[str, float] = {}
        self._draining = asyncio.Event()
        self._wake = asyncio.Event()
        # One pool of running slots for the whole process, whichever batches they go to.
        self._slots = asyncio.Semaphore(options.concurrency)
        self.result = WorkerResult()

    def drain(self) -> None:
        """Stop creating (SIGTERM): running work gets `drain_timeout` to finish, then is handed back."""
        if self._draining.is_set():
            return
        self._draining.set()
        self.result.drained = True
        self.on_event("draining", {"timeout": self.options.drain_timeout})
        for runner, _task in self._runners.values():
            runner.stop_submitting("the worker is draining", STOP_DRAIN)
        self._wake.set()

    async def run(self) -> WorkerResult:
        beat = asyncio.get_running_loop().create_task(self._heartbeat())
        try:
            while True:
                try:
                    if not self._draining.is_set():
                        self._start_runners()
                    self._open_gates()
                    if not self._runners and (self._draining.is_set() or self._idle()):
                        break
                except DBAPIError as exc:  # the database is restarting: look again at the next tick
                    self.on_event("ledger_unavailable", {"error": " ".join(str(exc.orig).split())[:200]})
                self._wake.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.options.tick)
                if self._draining.is_set():
                    await self._finish_draining()
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
            for _runner, task in self._runners.values():
                task.cancel()
            await asyncio.gather(*(task for _r, task in self._runners.values()), return_exceptions=True)
            self.ledger.sign_off()
        return self.result

    # -- what to work on ------------------------------------------------------------------------------
    def _idle(self) -> bool:
        """With `until_idle`: nothing left but paused batches with no paid task in flight."""
        if not self.options.until_idle:
            return False
        for batch in self.ledger.batches_with_work(self.options.batch_ids or None):
            counts = self.ledger.counts(batch["id"])
            if not batch["paused_reason"] or any(counts.get(s) for s in (SUBMITTING, RUNNING, SUCCEEDED)):
                return False
        return True

    def _start_runners(self) -> None:
        now = time.monotonic()
        for batch in self.ledger.batches_with_work(self.options.batch_ids or None):
            batch_id = batch["id"]
            if batch_id in self._runners or now - self._ended.get(batch_id, -COOLDOWN) < COOLDOWN:
                continue
            gate = self._gates.setdefault(batch_id, asyncio.Event())
            runner = BatchRunner(
                self.ledger, self.client, batch_id, self._run_options(batch, gate), self._hear
            )
            task = asyncio.get_running_loop().create_task(runner.run())
            task.add_done_callback(functools.partial(self._runner_ended, batch_id))
            self._runners[batch_id] = (runner, task)
            self.on_event("batch_started", {"batch": batch_id, "priority": batch["priority"]})

    def _open_gates(self) -> None:
        """Only the highest priority with rows left to create may create; ties share the pace."""
        waiting = {b: self.ledger.batch(b) for b in self._runners}
        creating = [
            batch
            for batch in waiting.values()
            if batch is not None
            and not batch["paused_reason"]
            and batch["cancelled_at"] is None
            and self._has_pending(batch["id"])
        ]
        top = max((b["priority"] for b in creating), default=None)
        for batch_id in self._runners:
            gate = self._gates[batch_id]
            batch = waiting[batch_id]
            if top is not None and batch is not None and batch in creating and batch["priority"] == top:
                gate.set()
            else:
                gate.clear()

    def _has_pending(self, batch_id: str) -> bool:
        return bool(self.ledger.counts(batch_id).get(PENDING))

    def _run_options(self, batch: Record, gate: asyncio.Event) -> RunOptions:
        saved = dict(batch["options"] or {})
        root = self.options.output_root
        output = root / batch["id"] if root is not None else Path(batch["output_dir"] or "kie-output")
        return RunOptions(
            output_dir=output,
            max_credits=saved.get("max_credits"),
            concurrency=self.options.concurrency,
            create_interval=self.options.create_interval,
            create_window=self.options.create_window,
            allow_unknown_price=bool(saved.get("allow_unknown_price")),
            webhook_base=saved.get("public_url"),
            deadline=self.options.deadline,
            unreachable_timeout=self.options.unreachable_timeout,
            worker=True,
            may_submit=gate,
            slots=self._slots,
        )

    def _runner_ended(self, batch_id: str, task: asyncio.Task[RunResult]) -> None:
        self._runners.pop(batch_id, None)
        self._ended[batch_id] = time.monotonic()
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            # The ledger or the disk failed under this batch (a database restart, say): nothing is
            # lost, since every step is in the ledger; the batch is taken up again after the cooldown.
            self.on_event("batch_error", {"batch": batch_id, "error": f"{type(error).__name__}: {error}"})
        else:
            self.result.batches[batch_id] = task.result()
            self.on_event("batch_ended", {"batch": batch_id, "counts": task.result().counts})
        self._wake.set()

    def _hear(self, kind: str, data: Mapping[str, Any]) -> None:
        self.on_event(kind, data)

    # -- liveness ---------------------------------------------------------------------------------------
    async def _heartbeat(self) -> None:
        """The process's heartbeat: it renews the lease on every task this worker polls. A beat that
        fails (the database is restarting) is retried at the next one; leases are long enough to span it."""
        while True:
            state = "draining" if self._draining.is_set() else "running"
            in_hand = sum(runner.busy for runner, _task in self._runners.values())
            root = str(self.options.output_root) if self.options.output_root else None
            try:
                self.ledger.heartbeat(
                    state=state, in_hand=in_hand, output_root=root, batch_ids=list(self._runners)
                )
            except Exception as exc:  # liveness must outlast a database restart
                self.on_event("heartbeat_failed", {"error": f"{type(exc).__name__}: {exc}"})
            await asyncio.sleep(HEARTBEAT)

    async def _finish_draining(self) -> None:
        """Give running work `drain_timeout` seconds, then cancel it; `sign_off` hands its tasks back."""
        tasks = [task for _r, task in self._runners.values()]
        if not tasks:
            return
        _done, left = await asyncio.wait(tasks, timeout=self.options.drain_timeout)
        for task in left:
            task.cancel()
        await asyncio.gather(*left, return_exceptions=True)
