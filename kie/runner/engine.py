"""The batch engine: submit at the account's pace, wait, download, and record every step in the ledger.

One asyncio loop runs everything. Creates are paced by a limiter kept in the ledger (one slot per
`create_interval`, shared by every process on the store) and running tasks are capped. Running tasks
wait in one `Watcher` heap that polls each on the adaptive schedule, and a few download workers save
each result the moment its task succeeds. Every state change is committed before the next step, so the
process may be killed at any instant: a rerun resumes from the ledger, never pays twice, and never
loses a paid result.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from kie import catalog
from kie.catalog.spec import ModelSpec
from kie.client import AsyncKie
from kie.client._base import callback_for
from kie.errors import (
    APIStatusError,
    AuthenticationError,
    BudgetExceededError,
    InsufficientCreditsError,
    KieError,
    MaintenanceError,
    RateLimitError,
    SubmissionUnknownError,
    TransportError,
    ValidationError,
)
from kie.protocol import flows
from kie.protocol.flows import Watch
from kie.protocol.polling import Pacer
from kie.protocol.task import TaskState, TaskStatus
from kie.runner.finish import MANIFEST, Finished, finish, write_manifest
from kie.runner.limits import read_gate
from kie.runner.priors import load_priors
from kie.runner.watcher import Watcher
from kie.store import (
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
from kie.store.ledger import HEARTBEAT
from kie.webhooks.receiver import callback_url

EventHook = Callable[[str, Mapping[str, Any]], None]
# Plans the batch's file into the ledger in a thread while the runner submits: called with a hook to
# call after each committed chunk (with the jobs it added) and a question asked between chunks
# (whether to stop); returns the jobs it added.
Planner = Callable[[Callable[[int], None], Callable[[], bool]], int]


@dataclass
class RunOptions:
    output_dir: Path
    max_credits: float | None = None
    concurrency: int = 100
    create_interval: float = 0.5
    create_window: float | None = None  # seconds of the account's window (10 for 20 per 10 s)
    allow_unknown_price: bool = False
    deadline: float = 30 * 60.0
    callback_url: str | None = None
    webhook_base: str | None = None  # public URL of a `kie serve` receiver: each job gets its own token URL
    limiter_name: str = "creates"
    lease_seconds: float = 90.0
    # How long Kie may stay unreachable (connection refused, DNS) before the batch pauses. Creates that
    # never left this machine are retried with backoff meanwhile; nothing ambiguous is ever resent.
    unreachable_timeout: float = 180.0
    upload_path: str = "kie/uploads"
    # Under `kie worker`, the worker beats for the process, a pause or drain never unpauses or pauses the
    # batch for the others, and it opens `may_submit` only for the batches whose turn it is to create.
    worker: bool = False
    may_submit: asyncio.Event | None = None
    slots: asyncio.Semaphore | None = None  # running slots shared with other batches of the process


# Why submitting stopped, for the exit code and the next step the CLI prints.
STOP_INTERRUPTED, STOP_BUDGET, STOP_CREDITS = "interrupted", "budget", "credits"
STOP_AUTH, STOP_UNREACHABLE, STOP_KIE = "auth", "unreachable", "kie"
# Stops that are about one process, not the batch: they leave the batch unpaused for other workers.
STOP_DRAIN, STOP_PAUSED = "drain", "paused"
_PROCESS_STOPS = (STOP_DRAIN, STOP_PAUSED)


@dataclass
class RunResult:
    counts: dict[str, int]
    stopped_reason: str | None
    spent: float
    in_flight: float
    # How far the account balance fell since the batch first started (None if it could not be read).
    # Kie reports credits per task only for Market models; this covers the rest, and anything else
    # that spent from the same account meanwhile.
    balance_spent: float | None = None
    stop_kind: str | None = None  # one of the STOP_* kinds when submitting stopped early


@dataclass
class _State:
    queue: deque[str] = field(default_factory=deque)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    busy: int = 0  # jobs holding a running slot: being submitted, watched or downloaded
    stop_reason: str | None = None
    stop_kind: str | None = None
    unreachable_since: float | None = None  # monotonic time of the first of consecutive refusals
    unreachable_tries: int = 0
    resume_at: float = 0.0  # no create before this monotonic time (backing off an unreachable Kie)


DOWNLOADERS = 16
READ_AHEAD = 64  # queued jobs whose rows are read in one query
SLOTS_AHEAD = 8  # create slots reserved in the shared limiter at once
MISSED_SLOT = 2.0  # paces late (at least 50 ms) after which a reserved slot is dropped, not used


class BatchRunner:
    def __init__(
        self,
        ledger: Ledger,
        client: AsyncKie,
        batch_id: str,
        options: RunOptions,
        on_event: EventHook | None = None,
        planner: Planner | None = None,
    ) -> None:
        self.ledger = ledger
        self.planner = planner
        self._planning = False  # a planner is still adding the file's rows to the ledger
        self._planned = 0
        self._more_planned = asyncio.Event()
        self._first_chunk = asyncio.Event()
        self._ready_mark: tuple[Any, ...] | None = None
        self.client = client
        self.batch_id = batch_id
        self.options = options
        self.on_event = on_event or (lambda kind, data: None)
        self._state = _State()
        self._slots = options.slots or asyncio.Semaphore(options.concurrency)
        self._stopping = asyncio.Event()
        self._idle = asyncio.Event()
        self._downloads: asyncio.Queue[tuple[str, TaskStatus]] = asyncio.Queue()
        # Jobs a callback receiver settled, holding their slot until it has saved them (webhook mode).
        self._settling: dict[str, float] = {}
        # Jobs this run stopped on (a poll error or deadline, a failed save): left for the next run,
        # never taken up again by this one.
        self._gave_up: set[str] = set()
        self._watcher = Watcher(client, self._settled, concurrency=client.max_connections)
        # Creates under way at once: beyond the connection pool they would only queue, each holding
        # its coroutine, row and request (the peak memory of an unthrottled burst).
        self._sending = asyncio.Semaphore(client.max_connections)
        self.manifest_path = options.output_dir / MANIFEST
        self._ahead: dict[str, Record] = {}
        self._slots_ahead: deque[float] = deque()
        # Whether the batch has pipeline steps: without any, finishing a job looks for no next step.
        self._pipelines = True
        # The ledger's slots share the account pace between processes; the client's pacer enforces the
        # spacing again at departure. The 3 % margin absorbs jitter between here and Kie's clock: with
        # it, 1,000 creates against the sandbox's 20-per-10-s window drew no 429 (docs/benchmarks.md).
        # Under `kie worker` several processes take turns on one pace, and the time from a shared slot
        # to the socket differs between them by their scheduling; 5 % absorbs that (measured: 3 % left
        # 1 to 2 429s per 2,000 creates across 2 to 4 workers).
        self.pace = options.create_interval * (1.05 if options.worker else 1.03)
        # With a callback receiver, polling is only the safety net for lost callbacks: the first poll
        # comes at three times the expected duration, then sparsely.
        self._poll = (
            replace(client.config.poll, first_fraction=3.0, growth=0.5, max_interval=600.0)
            if options.webhook_base
            else None
        )
        # How long this store's finished tasks took, per model and options: the first poll of each job
        # lands near its completion instead of at the catalogue's guess.
        load_priors(ledger, client.config.learned)
        if client.read_gate is None:  # status reads share the account's limit with every process
            client.read_gate = read_gate(ledger, scale=client.config.poll.scale)
        if client.config.create_pacer is None and self.pace > 0:
            # The account's window, as the user gave it (20 per 10 s): no 20 creates may reach Kie
            # within 10 s even when one of them is held up inside Kie.
            count = (
                max(1, round(options.create_window / options.create_interval)) if options.create_window else 0
            )
            window = (count, options.create_window) if options.create_window else None
            client.config.create_pacer = Pacer(self.pace, window=window)

    @property
    def busy(self) -> int:
        """Jobs this run holds a slot for: being submitted, watched or saved."""
        return self._state.busy

    # -- control ----------------------------------------------------------------------------------
    def stop_submitting(self, reason: str = "interrupted", kind: str = STOP_INTERRUPTED) -> None:
        """Stop creating tasks; tasks already running are still waited for and downloaded."""
        if self._stopping.is_set():
            return
        self._state.stop_reason = reason
        self._state.stop_kind = kind
        self._stopping.set()
        self.on_event("stopping", {"reason": reason, "kind": kind})

    def _emit(self, kind: str, job: Record | None = None, **data: Any) -> None:
        payload = dict(data)
        if job is not None:
            payload.update(
                {"job": job["id"], "row": job["row_key"], "model": job["model"], "task_id": job["task_id"]}
            )
        self.on_event(kind, payload)

    # -- the run ----------------------------------------------------------------------------------
    async def run(self) -> RunResult:
        self.options.output_dir.mkdir(parents=True, exist_ok=True)
        planning = self._start_planning()
        if planning is not None:  # the batch row comes with the first chunk: wait for it
            await self._first_chunk.wait()
        expired = self.ledger.expire_leases(self.batch_id)
        if expired:
            self._emit("unknown", None, count=expired, reason="a previous run stopped while submitting")
        self.write_manifest()
        if not self.options.worker:
            self.ledger.set_paused(self.batch_id, None)
        await self._note_balance()
        background = [self._spawn(self._watcher.run()), self._spawn(self._keep_alive())]
        background += [self._spawn(self._download_worker()) for _ in range(DOWNLOADERS)]
        if self._poll is not None:
            background.append(self._spawn(self._sweep()))
        try:
            while True:
                self._pipelines = self.ledger.has_steps(self.batch_id)
                await self._adopt()
                ready, self._ready_mark = self.ledger.ready_after(self.batch_id, None)
                self._state.queue.extend(ready)
                await self._submit_loop()
                while self._state.busy:
                    self._idle.clear()
                    await self._idle.wait()
                if self._planning and not self._stopping.is_set():
                    continue
                if self._stopping.is_set() or not await self._others_at_work():
                    break
        finally:
            if planning is not None:
                with contextlib.suppress(Exception):
                    await planning
            self._watcher.close()
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
        if not self.options.worker:
            self.ledger.sign_off()
        self.write_manifest()
        if self._state.stop_reason and self._state.stop_kind not in _PROCESS_STOPS:
            self.ledger.set_paused(self.batch_id, self._state.stop_reason)
        await self._note_balance()
        spent, flight = self.ledger.spend(self.batch_id)
        batch = self.ledger.batch(self.batch_id)
        drop = None
        if batch is not None and batch["balance_start"] is not None and batch["balance_end"] is not None:
            drop = batch["balance_start"] - batch["balance_end"]
        return RunResult(
            self.ledger.counts(self.batch_id),
            self._state.stop_reason,
            spent,
            flight,
            drop,
            self._state.stop_kind,
        )

    def _start_planning(self) -> asyncio.Future[int] | None:
        """Run the planner in a thread; each committed chunk wakes the submit loop."""
        if self.planner is None:
            return None
        loop = asyncio.get_running_loop()
        self._planning = True
        self._emit("planning", None, planned=0, complete=False)

        def chunk_done(added: int) -> None:
            loop.call_soon_threadsafe(self._chunk_planned, added)

        future = asyncio.ensure_future(asyncio.to_thread(self.planner, chunk_done, self._interrupted))
        future.add_done_callback(self._planning_over)
        return future

    def _chunk_planned(self, added: int) -> None:
        self._planned += added
        self._more_planned.set()
        self._first_chunk.set()
        self._emit("planning", None, planned=self._planned, complete=False)

    def _planning_over(self, future: asyncio.Future[int]) -> None:
        self._planning = False
        self._more_planned.set()
        self._first_chunk.set()
        error = None if future.cancelled() else future.exception()
        if error is not None:
            self.stop_submitting(f"planning the batch file stopped: {error}", STOP_KIE)
            return
        self._emit("planning", None, planned=self._planned, complete=not self._interrupted())

    def _interrupted(self) -> bool:
        """Only the user stops the planning (Ctrl-C): after a budget or a refusal the rest of the
        file is still planned, so the paused batch holds all its rows."""
        return self._state.stop_kind == STOP_INTERRUPTED

    def _take_planned(self) -> bool:
        """Queue the jobs planned since the last look; True when there were any."""
        if not self._more_planned.is_set():
            return False
        self._more_planned.clear()
        ready, self._ready_mark = self.ledger.ready_after(self.batch_id, self._ready_mark)
        if ready and not self._pipelines:
            self._pipelines = self.ledger.has_steps(self.batch_id)
        self._state.queue.extend(ready)
        return bool(ready)

    async def _adopt(self) -> None:
        """Take on the batch's running and succeeded jobs that nobody in this process is handling:
        those of an earlier run, and those another process on the same batch left behind."""
        for job in self.ledger.claim_polls(self.batch_id):
            if job["id"] in self._watcher or job["id"] in self._settling or job["id"] in self._gave_up:
                continue
            await self._take_slot()
            if job["state"] == SUCCEEDED:
                self._downloads.put_nowait((job["id"], _recorded(job)))
            else:
                self._watcher.add(job["id"], self._watch_for(job, resumed=True), now=True)

    async def _others_at_work(self) -> bool:
        """Whether the batch still has work under way elsewhere (another process on the same batch).
        Then this run waits for it and takes over what appears, so every process on a batch ends when
        the batch does, and a process that dies leaves nothing unwatched."""
        self.ledger.expire_leases(self.batch_id)
        counts = self.ledger.counts(self.batch_id)
        if not any(
            counts.get(state) for state in (SUBMITTING, RUNNING, SUCCEEDED)
        ) and not self.ledger.ready_ids(self.batch_id):
            return False
        if self._gave_up and not counts.get(SUBMITTING) and not self.ledger.ready_ids(self.batch_id):
            # What is left may be only what this run gave up on: that is for the next run, not a
            # reason to wait here for ever.
            open_ = sum(counts.get(state, 0) for state in (RUNNING, SUCCEEDED))
            mine = self.ledger.jobs_by_ids(list(self._gave_up)).values()
            if open_ == sum(1 for job in mine if job["state"] in (RUNNING, SUCCEEDED)):
                return False
        if not counts.get(RUNNING) and not counts.get(SUCCEEDED) and not self.ledger.ready_ids(self.batch_id):
            # Only creates in flight elsewhere: give them a moment to come back with a task id.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), max(0.05, self.client.config.poll.scale * 5))
        else:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), max(0.02, self.client.config.poll.scale))
        return True

    async def _keep_alive(self) -> None:
        """The heartbeat that keeps this process's poll leases (unless a worker beats for the whole
        process), and a look at the batch row every second, so a pause or cancel given on any machine
        stops this run's creates."""
        beat = float("-inf")
        while True:
            if not self.options.worker and time.monotonic() - beat >= HEARTBEAT:
                beat = time.monotonic()
                self.ledger.heartbeat(in_hand=self._state.busy, batch_ids=[self.batch_id])
            batch = self.ledger.batch(self.batch_id)
            if batch is not None and (batch["cancelled_at"] is not None or self._paused_elsewhere(batch)):
                reason = "cancelled" if batch["cancelled_at"] is not None else str(batch["paused_reason"])
                self.stop_submitting(reason, STOP_PAUSED)
            await asyncio.sleep(1.0)

    def _paused_elsewhere(self, batch: Record) -> bool:
        """A pause this run did not set itself (another process, or `kie batch pause`)."""
        return bool(batch["paused_reason"]) and not self._stopping.is_set()

    async def _note_balance(self) -> None:
        try:
            self.ledger.record_balance(self.batch_id, await self.client.credits())
        except KieError as exc:  # the balance is a report, never a reason to stop
            self._emit("balance_unavailable", None, error=str(exc))

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._state.tasks.add(task)
        task.add_done_callback(self._state.tasks.discard)
        return task

    async def _take_slot(self) -> None:
        await self._slots.acquire()
        self._state.busy += 1

    def _free_slot(self) -> None:
        self._slots.release()
        self._state.busy -= 1
        if self._state.busy == 0:
            self._idle.set()

    async def _submit_loop(self) -> None:
        while not self._stopping.is_set():
            if not self._state.queue:
                if self._take_planned():
                    continue
                if not self._state.busy and not self._planning:
                    return
                # Wake for a newly planned chunk at once; otherwise look again shortly (a pipeline
                # step or a retry may have been queued meanwhile).
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._more_planned.wait(), 0.05)
                continue
            await self._take_slot()
            backoff = self._state.resume_at - time.monotonic()
            if backoff > 0:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), backoff)
            if self._stopping.is_set():
                self._free_slot()
                return
            job_id = self._state.queue.popleft()
            job = self._next_row(job_id)
            if job is None or job["state"] != PENDING:
                self._free_slot()
                continue
            gate = self.options.may_submit
            if gate is not None and not gate.is_set():
                # Not this batch's turn to create (a worker runs a higher priority first): keep the
                # row first in line. Rows others took meanwhile were dropped above, so a closed gate
                # never holds up a queue of rows that are no longer pending.
                self._free_slot()
                self._state.queue.appendleft(job_id)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(gate.wait(), 0.5)
                continue
            if self.options.worker and not self.ledger.reserve_row(job_id):
                # Another worker is about to send this row: leave it, and its rate-limit slot, to it.
                self._free_slot()
                continue
            wait = self._next_slot()
            if wait > 0:
                await asyncio.sleep(wait)
            await self._sending.acquire()
            self._spawn(self._submit(job)).add_done_callback(lambda _: self._sending.release())

    def _next_row(self, job_id: str) -> Record | None:
        """The queued job's row, read with the next few in one query. A row read ahead may be stale;
        the claim is a compare-and-set that rereads it then, so staleness costs nothing but a read."""
        ahead = self._ahead
        if job_id not in ahead:
            ahead.clear()
            wanted = [job_id, *itertools.islice(self._state.queue, READ_AHEAD - 1)]
            ahead.update(self.ledger.jobs_by_ids(wanted))
        return ahead.pop(job_id, None)

    def _next_slot(self) -> float:
        """Seconds until this create's slot. Slots are reserved in the shared limiter a few at a time
        (as many as jobs are queued, at most SLOTS_AHEAD), each `pace` after the one before."""
        now = time.monotonic()
        # A slot this run missed (it was held up) is dropped, never caught up: the account's pace has
        # moved on, and under `kie worker` other processes are using the slots after it, so catching up
        # would put their creates and ours in one window. A lone process has its own client pacer to
        # keep its window, and only drops slots it missed by a lot.
        late = self.pace / 2 if self.options.worker else max(MISSED_SLOT * self.pace, 0.05)
        while self._slots_ahead and self._slots_ahead[0] < now - late:
            self._slots_ahead.popleft()
        if not self._slots_ahead:
            count = max(1, min(SLOTS_AHEAD, len(self._state.queue) + 1))
            first = now + self.ledger.reserve_slot(self.options.limiter_name, self.pace, count)
            self._slots_ahead.extend(first + n * self.pace for n in range(count))
        return max(0.0, self._slots_ahead.popleft() - now)

    # -- one job --------------------------------------------------------------------------------------
    async def _submit(self, job: Record) -> None:
        """Claim, create, record the task id, and hand the task to the watcher (the slot goes with it)."""
        spec = catalog.get(job["model"])
        values = dict(job["input"])
        if self._stopping.is_set():  # stopped between scheduling and claiming: not sent, stays pending
            self._free_slot()
            return
        if flows.has_local_files(spec, values):
            uploaded = await self._upload(job, spec, values)
            if uploaded is None:
                self._free_slot()
                return
            values = uploaded
        callback: str | None
        if self.options.webhook_base:
            callback = callback_url(self.options.webhook_base, job["callback_token"])
        else:
            callback = self.options.callback_url or callback_for(self.client.config, spec)
        held: list[Record] = []

        def depart() -> None:
            """Intent at departure: the job becomes `submitting` only once its rate-limit slot, its
            connection and the client's spacing are behind it, so a crash while it waits for them
            leaves it `pending` (safe to send later) instead of `unknown`."""
            if self._stopping.is_set():
                raise _NotSent("stopped before departure")
            claimed = self.ledger.claim_for_submit(
                job["id"], self.options.lease_seconds, values, budget=self.options.max_credits, job=job
            )
            if claimed is None:
                raise _NotSent("claimed by another worker")
            held.append(claimed)
            self._emit("submitting", claimed)

        try:
            created = await self.client.run(flows.submit(spec, values, callback, on_depart=depart))
        except _NotSent:
            self._free_slot()
            return
        except BudgetExceededError:
            self._free_slot()
            self._state.queue.appendleft(job["id"])
            self.stop_submitting("budget", STOP_BUDGET)
            return
        except SubmissionUnknownError as exc:
            self.ledger.transition(
                job["id"], SUBMITTING, UNKNOWN, {"error": str(exc)}, error_message=str(exc)
            )
            self._emit("unknown", held[0] if held else job, error=str(exc))
            self._free_slot()
            return
        except KieError as exc:
            if held:
                self._refused(held[0], exc)
            else:
                self._emit("retry_later", job, error=str(exc))
                self._state.queue.append(job["id"])
            self._free_slot()
            return
        except Exception as exc:
            # Not Kie: the ledger failed (a database restart), most likely inside the departure claim,
            # whose transaction then never committed. Queueing the job again is safe: it is sent only
            # after a claim from `pending` succeeds, and a job the claim did move stays `submitting`,
            # which becomes `unknown`, never a second send.
            self._emit("retry_later", job, error=f"{type(exc).__name__}: {exc}")
            self._state.queue.append(job["id"])
            self._free_slot()
            return
        claimed = held[0]
        self._reachable()
        try:
            running = self.ledger.mark_running(claimed, created.task_id)
            if running is None:
                # The lease was taken from us (e.g. judged crashed): the task id is the first evidence.
                running = self.ledger.move(
                    job["id"], UNKNOWN, RUNNING, {"late_task_id": created.task_id}, task_id=created.task_id
                ) or self.ledger.job(job["id"])
        except Exception as exc:  # the ledger stayed away past its patience: the job becomes `unknown`
            self._emit("unknown", claimed, late_task_id=created.task_id, error=f"{type(exc).__name__}: {exc}")
            self._free_slot()
            return
        assert running is not None
        self._emit("running", running)
        if created.status is not None:
            self._settled(running["id"], created.status)
        else:
            self._watcher.add(running["id"], self._watch_for(running, resumed=False))

    def _watch_for(self, job: Record, *, resumed: bool) -> Watch:
        """A resumed job's schedule counts the time it already ran; its deadline starts afresh."""
        elapsed = time.time() - job["submitted_at"] if resumed and job["submitted_at"] else 0.0
        return Watch.begin(
            catalog.get(job["model"]),
            job["task_id"],
            policy=self._poll or self.client.config.poll,
            now=time.monotonic(),
            deadline=self.options.deadline,
            learned=self.client.config.learned,
            elapsed=elapsed,
            values=job["input"],
        )

    async def _upload(self, job: Record, spec: ModelSpec, values: dict[str, Any]) -> dict[str, Any] | None:
        """Upload the row's local files (the same flow `kie generate` uses) and record their URLs in the
        job's input before the create, so a resumed batch never uploads them again."""
        try:
            uploaded: dict[str, Any] = await self.client.run(
                flows.upload_inputs(spec, values, upload_path=self.options.upload_path)
            )
        except TransportError as exc:
            self._unreachable(job, exc)
            self._state.queue.append(job["id"])
            return None
        except (KieError, OSError) as exc:
            reason = f"its input file could not be uploaded: {exc}"
            self.ledger.transition(job["id"], PENDING, REJECTED, {"error": reason}, error_message=reason)
            self._emit("rejected", job, error=reason)
            return None
        self.ledger.transition(job["id"], PENDING, PENDING, {"uploaded": True}, input=uploaded)
        return uploaded

    def _unreachable(self, job: Record, exc: KieError) -> None:
        """A request that certainly never reached Kie: back off, say so live, and pause the batch once
        Kie has been unreachable for `unreachable_timeout`."""
        state, now = self._state, time.monotonic()
        if state.unreachable_since is None:
            state.unreachable_since = now
        state.unreachable_tries += 1
        delay = min(30.0, 2.0 ** min(state.unreachable_tries, 5))
        state.resume_at = now + delay
        url = self.client.config.settings.base_url
        down_for = now - state.unreachable_since
        if down_for >= self.options.unreachable_timeout:
            self.stop_submitting(
                f"Kie unreachable at {url} for {down_for:.0f} s ({exc})", kind=STOP_UNREACHABLE
            )
            return
        self._emit(
            "unreachable",
            job,
            url=url,
            attempt=state.unreachable_tries,
            retry_in=round(delay, 1),
            error=str(exc),
        )

    def _reachable(self) -> None:
        self._state.unreachable_since = None
        self._state.unreachable_tries = 0

    def _refused(self, job: Record, exc: KieError) -> None:
        """Kie answered the create with a definitive no: nothing was created."""
        if isinstance(exc, InsufficientCreditsError):
            self.ledger.release(job, "402 insufficient credits")
            self._state.queue.appendleft(job["id"])
            self.stop_submitting("insufficient credits: top up, then run `kie batch resume`", STOP_CREDITS)
        elif isinstance(exc, TransportError):
            self.ledger.release(job, str(exc))
            self._state.queue.appendleft(job["id"])
            self._unreachable(job, exc)
        elif isinstance(exc, (RateLimitError, MaintenanceError)):
            self.ledger.release(job, str(exc))
            if isinstance(exc, RateLimitError):
                # The account's window is full: every process backs off one window, through the
                # shared limiter, and the slots this run reserved ahead are given up.
                window = self.options.create_window or 20 * self.options.create_interval
                self.ledger.push_back(self.options.limiter_name, window)
                self._slots_ahead.clear()
            self._state.queue.append(job["id"])
            self._emit("retry_later", job, error=str(exc))
        elif isinstance(exc, AuthenticationError):
            self.ledger.release(job, str(exc))
            self.stop_submitting(str(exc), STOP_AUTH)
        elif isinstance(exc, APIStatusError) and not isinstance(exc, ValidationError):
            self.ledger.release(job, str(exc))
            self.stop_submitting(str(exc), STOP_KIE)
        else:
            self.ledger.transition(
                job["id"],
                SUBMITTING,
                REJECTED,
                {"error": str(exc)},
                error_code=str(getattr(exc, "code", "") or ""),
                error_message=str(exc),
            )
            self._emit("rejected", job, error=str(exc))

    def _settled(self, job_id: str, outcome: TaskStatus | KieError) -> None:
        """The watcher's verdict on a job: finishing it (record, save, feed the next step) is the
        download workers' job, on the one path every other source of news takes too."""
        if isinstance(outcome, TaskStatus):
            self._downloads.put_nowait((job_id, outcome))
            return
        self._give_up(job_id)
        self._emit("still_running", self.ledger.job(job_id), error=str(outcome))
        self._free_slot()

    def _give_up(self, job_id: str) -> None:
        """This run stops on the job (a poll error, the deadline, a failed save): it is left for the next
        run or another worker, so its poll lease and download claim are handed back at once."""
        self._gave_up.add(job_id)
        with contextlib.suppress(Exception):  # a ledger that is away: the leases lapse on their own
            self.ledger.release_poll(job_id)
            self.ledger.release_download(job_id)

    async def _download_worker(self) -> None:
        while True:
            job_id, status = await self._downloads.get()
            free = True
            try:
                free = await self._finish(job_id, status)
            except Exception as exc:  # the disk, not Kie: the job stays `succeeded` for the next run
                self._give_up(job_id)
                self.on_event("download_failed", {"job": job_id, "error": str(exc)})
            finally:
                if free:
                    self._free_slot()

    async def _finish(self, job_id: str, status: TaskStatus) -> bool:
        """Finish one job; False when another process holds its download and this run (in webhook
        mode) should keep its slot until that process is done."""
        done: Finished = await self.client.run(
            finish(
                self.ledger,
                job_id,
                status,
                output_dir=self.options.output_dir,
                via="poll",
                pipelines=self._pipelines,
                batch_id=self.batch_id,
            )
        )
        job = done.job
        if done.error is not None:
            self._give_up(job_id)
            self._emit("download_failed", job, error=str(done.error))
        elif done.state == DONE:
            self._emit("done", job, files=[str(s.path) for s in done.saved])
            self._state.queue.extendleft(reversed(done.children))
        elif done.state == FAILED:
            failed = flows.task_failed(status) if status.state is TaskState.FAILED else None
            self._emit("failed", job, error=str(failed or (job or {}).get("error_message")))
        elif done.state == SUCCEEDED and self._poll is not None:
            self._settling[job_id] = time.monotonic()
            return False
        return True

    async def _sweep(self) -> None:
        """In webhook mode a receiver settles jobs in the ledger: stop watching them, and hold their
        slots until they are done, so the run neither ends early nor waits for polls it no longer needs."""
        after = self.ledger.last_event_id()
        interval = max(0.01, self.client.config.poll.scale)
        while True:
            await asyncio.sleep(interval)
            after, left = self.ledger.left_running(self.batch_id, after)
            for job_id in left:
                if self._watcher.drop(job_id):
                    self._settling[job_id] = 0.0
            self._check_settling()

    def _check_settling(self) -> None:
        now = time.monotonic()
        for job_id, tried in list(self._settling.items()):
            job = self.ledger.job(job_id)
            state = job["state"] if job is not None else None
            if state == SUCCEEDED:
                # Saved elsewhere (the receiver) or, if that process died, here once its claim lapses.
                if now - tried >= 5.0 * max(self.client.config.poll.scale, 0.01) and job is not None:
                    del self._settling[job_id]
                    self._downloads.put_nowait((job_id, _recorded(job)))
                continue
            del self._settling[job_id]
            if state == DONE and job is not None:
                self._emit("done", job, via="callback")
                if self._pipelines:
                    ready = [c["id"] for c in self.ledger.children_of(job_id, states=[PENDING])]
                    self._state.queue.extendleft(reversed(ready))
            elif state == FAILED and job is not None:
                self._emit("failed", job, error=job["error_message"])
            self._free_slot()

    # -- manifest --------------------------------------------------------------------------------------
    def write_manifest(self) -> None:
        """Rewrite the manifest from the ledger, so the two always agree."""
        write_manifest(self.ledger, self.batch_id, self.options.output_dir)


class _NotSent(Exception):
    """The create was abandoned before departure: nothing was sent, the job stays pending."""


def _recorded(job: Record) -> TaskStatus:
    """A succeeded job's result as the ledger recorded it."""
    return TaskStatus(job["task_id"], TaskState.SUCCEEDED, result_urls=tuple(job["result_urls"] or ()))
