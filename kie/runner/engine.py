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
import json
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
    DownloadError,
    InsufficientCreditsError,
    KieError,
    MaintenanceError,
    RateLimitError,
    SubmissionUnknownError,
    TransportError,
    ValidationError,
)
from kie.protocol import flows
from kie.protocol.files import SavedFile, safe_stem
from kie.protocol.flows import Watch
from kie.protocol.polling import Pacer
from kie.protocol.task import TaskState, TaskStatus
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
from kie.webhooks.receiver import callback_url

EventHook = Callable[[str, Mapping[str, Any]], None]


@dataclass
class RunOptions:
    output_dir: Path
    max_credits: float | None = None
    concurrency: int = 100
    create_interval: float = 0.5
    allow_unknown_price: bool = False
    deadline: float = 30 * 60.0
    callback_url: str | None = None
    webhook_base: str | None = None  # public URL of a `kie serve` receiver: each job gets its own token URL
    limiter_name: str = "creates"
    lease_seconds: float = 90.0


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


@dataclass
class _State:
    queue: deque[str] = field(default_factory=deque)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    busy: int = 0  # jobs holding a running slot: being submitted, watched or downloaded
    stop_reason: str | None = None


DOWNLOADERS = 16


class BatchRunner:
    def __init__(
        self,
        ledger: Ledger,
        client: AsyncKie,
        batch_id: str,
        options: RunOptions,
        on_event: EventHook | None = None,
    ) -> None:
        self.ledger = ledger
        self.client = client
        self.batch_id = batch_id
        self.options = options
        self.on_event = on_event or (lambda kind, data: None)
        self._state = _State()
        self._slots = asyncio.Semaphore(options.concurrency)
        self._stopping = asyncio.Event()
        self._idle = asyncio.Event()
        self._downloads: asyncio.Queue[tuple[str, TaskStatus]] = asyncio.Queue()
        self._watcher = Watcher(client, self._settled, concurrency=client.max_connections)
        # Creates under way at once: beyond the connection pool they would only queue, each holding
        # its coroutine, row and request (the peak memory of an unthrottled burst).
        self._sending = asyncio.Semaphore(client.max_connections)
        self.manifest_path = options.output_dir / "manifest.jsonl"
        # The ledger's slots share the account pace between processes; the client's pacer enforces the
        # spacing again at departure. The 3 % margin absorbs jitter between here and Kie's clock: with
        # it, 1,000 creates against the sandbox's 20-per-10-s window drew no 429 (docs/benchmarks.md).
        self.pace = options.create_interval * 1.03
        # With a callback receiver, polling is only the safety net for lost callbacks: the first poll
        # comes at three times the expected duration, then sparsely.
        self._poll = (
            replace(client.config.poll, first_fraction=3.0, growth=0.5, max_interval=600.0)
            if options.webhook_base
            else None
        )
        if client.config.create_pacer is None and self.pace > 0:
            client.config.create_pacer = Pacer(self.pace)

    # -- control ----------------------------------------------------------------------------------
    def stop_submitting(self, reason: str = "interrupted") -> None:
        """Stop creating tasks; tasks already running are still waited for and downloaded."""
        if self._stopping.is_set():
            return
        self._state.stop_reason = reason
        self._stopping.set()
        self.on_event("stopping", {"reason": reason})

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
        expired = self.ledger.expire_leases(self.batch_id)
        if expired:
            self._emit("unknown", None, count=expired, reason="a previous run stopped while submitting")
        self.write_manifest()
        self.ledger.set_paused(self.batch_id, None)
        await self._note_balance()
        background = [self._spawn(self._watcher.run())]
        background += [self._spawn(self._download_worker()) for _ in range(DOWNLOADERS)]
        if self._poll is not None:
            background.append(self._spawn(self._sweep()))
        try:
            for job in self.ledger.jobs(batch_id=self.batch_id, states=[RUNNING, SUCCEEDED]):
                await self._take_slot()
                if job["state"] == SUCCEEDED:
                    status = TaskStatus(
                        job["task_id"], TaskState.SUCCEEDED, result_urls=tuple(job["result_urls"] or ())
                    )
                    self._downloads.put_nowait((job["id"], status))
                else:
                    self._watcher.add(job["id"], self._watch_for(job, resumed=True), now=True)
            self._state.queue.extend(self.ledger.ready_ids(self.batch_id))
            await self._submit_loop()
            while self._state.busy:
                self._idle.clear()
                await self._idle.wait()
        finally:
            self._watcher.close()
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
        self.write_manifest()
        if self._state.stop_reason:
            self.ledger.set_paused(self.batch_id, self._state.stop_reason)
        await self._note_balance()
        spent, flight = self.ledger.spend(self.batch_id)
        batch = self.ledger.batch(self.batch_id)
        drop = None
        if batch is not None and batch["balance_start"] is not None and batch["balance_end"] is not None:
            drop = batch["balance_start"] - batch["balance_end"]
        return RunResult(self.ledger.counts(self.batch_id), self._state.stop_reason, spent, flight, drop)

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
                if not self._state.busy:
                    return
                await asyncio.sleep(0.05)
                continue
            await self._take_slot()
            if self._stopping.is_set():
                self._free_slot()
                return
            job_id = self._state.queue.popleft()
            job = self.ledger.job(job_id)
            if job is None or job["state"] != PENDING:
                self._free_slot()
                continue
            wait = self.ledger.reserve_slot(self.options.limiter_name, self.pace)
            if wait > 0:
                await asyncio.sleep(wait)
            await self._sending.acquire()
            self._spawn(self._submit(job)).add_done_callback(lambda _: self._sending.release())

    # -- one job --------------------------------------------------------------------------------------
    async def _submit(self, job: Record) -> None:
        """Claim, create, record the task id, and hand the task to the watcher (the slot goes with it)."""
        spec = catalog.get(job["model"])
        values = dict(job["input"])
        if self._stopping.is_set():  # stopped between scheduling and claiming: not sent, stays pending
            self._free_slot()
            return
        try:
            claimed = self.ledger.claim_for_submit(
                job["id"], self.options.lease_seconds, values, budget=self.options.max_credits
            )
        except BudgetExceededError:
            self._free_slot()
            self._state.queue.appendleft(job["id"])
            self.stop_submitting("budget")
            return
        if claimed is None:
            self._free_slot()
            return
        self._emit("submitting", claimed)
        callback: str | None
        if self.options.webhook_base:
            callback = callback_url(self.options.webhook_base, claimed["callback_token"])
        else:
            callback = self.options.callback_url or callback_for(self.client.config, spec)
        try:
            created = await self.client.run(flows.submit(spec, values, callback))
        except SubmissionUnknownError as exc:
            self.ledger.transition(
                job["id"], SUBMITTING, UNKNOWN, {"error": str(exc)}, error_message=str(exc)
            )
            self._emit("unknown", claimed, error=str(exc))
            self._free_slot()
            return
        except KieError as exc:
            self._refused(claimed, exc)
            self._free_slot()
            return
        if not self.ledger.mark_running(claimed, created.task_id):
            # The lease was taken from us (e.g. judged crashed): the task id is the first evidence.
            self.ledger.transition(
                job["id"], UNKNOWN, RUNNING, {"late_task_id": created.task_id}, task_id=created.task_id
            )
        running = self.ledger.job(job["id"])
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
        )

    def _refused(self, job: Record, exc: KieError) -> None:
        """Kie answered the create with a definitive no: nothing was created."""
        if isinstance(exc, InsufficientCreditsError):
            self.ledger.release(job, "402 insufficient credits")
            self._state.queue.appendleft(job["id"])
            self.stop_submitting("insufficient credits: top up, then run `kie batch resume`")
        elif isinstance(exc, (RateLimitError, MaintenanceError, TransportError)):
            self.ledger.release(job, str(exc))
            self._state.queue.append(job["id"])
            self._emit("retry_later", job, error=str(exc))
        elif isinstance(exc, AuthenticationError) or (
            isinstance(exc, APIStatusError) and not isinstance(exc, ValidationError)
        ):
            self.ledger.release(job, str(exc))
            self.stop_submitting(str(exc))
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
        """The watcher's verdict on a job: record it, then download or free the slot."""
        if isinstance(outcome, TaskStatus) and outcome.state is TaskState.SUCCEEDED:
            moved = self.ledger.transition(
                job_id,
                RUNNING,
                SUCCEEDED,
                {"cost_time": outcome.cost_time},
                result_urls=list(outcome.result_urls),
                cost_time=outcome.cost_time,
                completed_at=time.time(),
                actual_credits=outcome.credits_consumed,
            )
            if moved:
                self._downloads.put_nowait((job_id, outcome))
                return
            # Otherwise a callback receiver recorded it first and is saving the files.
        elif isinstance(outcome, TaskStatus):
            self.ledger.transition(
                job_id,
                RUNNING,
                FAILED,
                {"fail_code": outcome.fail_code},
                error_code=outcome.fail_code,
                error_message=outcome.fail_msg,
                completed_at=time.time(),
            )
            self._emit("failed", self.ledger.job(job_id), error=str(flows.task_failed(outcome)))
        else:
            self._emit("still_running", self.ledger.job(job_id), error=str(outcome))
        self._free_slot()

    async def _download_worker(self) -> None:
        while True:
            job_id, status = await self._downloads.get()
            job = self.ledger.job(job_id)
            try:
                if job is not None:
                    await self._download(job, status)
            except Exception as exc:  # the disk, not Kie: the job stays `succeeded` for the next run
                self._emit("download_failed", job, error=str(exc))
            finally:
                self._free_slot()

    async def _sweep(self) -> None:
        """In webhook mode a receiver settles jobs in the ledger: stop watching them, free their slots."""
        after = self.ledger.last_event_id()
        interval = max(0.01, self.client.config.poll.scale)
        while True:
            await asyncio.sleep(interval)
            after, left = self.ledger.left_running(self.batch_id, after)
            for job_id in left:
                if self._watcher.drop(job_id):
                    self._free_slot()

    async def _download(self, job: Record, status: TaskStatus) -> None:
        stem = self._stem(job)
        try:
            saved: list[SavedFile] = await self.client.run(
                flows.download(status, self.options.output_dir, stem)
            )
        except (DownloadError, KieError) as exc:
            self._emit("download_failed", job, error=str(exc))
            return
        records = [
            {
                "url": s.url,
                "path": str(s.path),
                "size": s.size,
                "sha256": s.sha256,
                "content_type": s.content_type,
            }
            for s in saved
        ]
        self.ledger.record_files(job["id"], records)
        self.ledger.transition(job["id"], SUCCEEDED, DONE, {"files": len(saved)}, downloaded_at=time.time())
        done = self.ledger.job(job["id"])
        assert done is not None
        self._append_manifest(done)
        self._emit("done", done, files=[r["path"] for r in records])
        self._release_children(done)

    def _release_children(self, parent: Record) -> None:
        """Feed the first result of a finished step into the next step's input and queue it."""
        children = self.ledger.children_of(parent["id"], states=[PENDING])
        if not children:
            return
        files = self.ledger.files_of(parent["id"])
        for child in children:
            spec = catalog.get(child["model"])
            source = (child["pending_input"] or {}).get("_from") or _first_media_field(spec)
            values = {k: v for k, v in dict(child["input"]).items() if k != "_from"}
            url = (parent["result_urls"] or [files[0]["url"] if files else None])[0]
            if source and url:
                field_spec = spec.fields.get(source)
                values[source] = [url] if field_spec is not None and "array" in field_spec.types else url
            self.ledger.transition(child["id"], PENDING, PENDING, {"input_from": parent["id"]}, input=values)
            self._state.queue.appendleft(child["id"])

    def _stem(self, job: Record) -> str:
        base = job["output_name"] or job["row_key"] or job["task_id"] or job["id"]
        return safe_stem(f"{base}-s{job['step']}" if job["step"] else str(base))

    # -- manifest --------------------------------------------------------------------------------------
    def _manifest_row(self, job: Record, files: list[Record]) -> dict[str, Any]:
        return {
            "row": job["row_key"],
            "step": job["step"],
            "job": job["id"],
            "model": job["model"],
            "task_id": job["task_id"],
            "state": job["state"],
            "credits": job["actual_credits"]
            if job["actual_credits"] is not None
            else job["estimated_credits"],
            "files": [{"path": f["path"], "sha256": f["sha256"], "size": f["size"]} for f in files],
            "error": job["error_message"] if job["state"] in (FAILED, REJECTED, UNKNOWN) else None,
        }

    def _append_manifest(self, job: Record) -> None:
        row = self._manifest_row(job, self.ledger.files_of(job["id"]))
        with self.manifest_path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")

    def write_manifest(self) -> None:
        """Rewrite the manifest from the ledger (atomically), so the two always agree."""
        tmp = self.manifest_path.with_suffix(".jsonl.tmp")
        with tmp.open("w", encoding="utf-8") as handle:
            for job, files in self.ledger.iter_jobs(
                batch_id=self.batch_id, states=[DONE, FAILED, REJECTED, UNKNOWN]
            ):
                handle.write(json.dumps(self._manifest_row(job, files)) + "\n")
        tmp.replace(self.manifest_path)


def _first_media_field(spec: ModelSpec) -> str | None:
    for name, field_spec in spec.fields.items():
        if field_spec.media == "image":
            return name
    for name, field_spec in spec.fields.items():
        if field_spec.media is not None:
            return name
    return None
