"""The batch engine: submit at the account's pace, wait, download, and record every step in the ledger.

One asyncio loop runs everything. Creates are paced by a limiter kept in the ledger (one slot per
`create_interval`, shared by every process on the store), running tasks are capped, and each running
task is watched by one coroutine that polls on the adaptive schedule and downloads the moment its task
succeeds. Every state change is committed before the next step, so the process may be killed at any
instant: a rerun resumes from the ledger, never pays twice, and never loses a paid result.
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

from sqlalchemy.engine import RowMapping

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
    TaskFailedError,
    TimeoutError,
    TransportError,
    ValidationError,
)
from kie.protocol import flows
from kie.protocol.files import SavedFile, safe_stem
from kie.protocol.polling import Pacer
from kie.protocol.task import TaskState, TaskStatus
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


@dataclass
class _State:
    queue: deque[str] = field(default_factory=deque)
    active: set[asyncio.Task[None]] = field(default_factory=set)
    stop_reason: str | None = None


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
        self.manifest_path = options.output_dir / "manifest.jsonl"
        # The ledger's slots share the account pace between processes; this pacer enforces the spacing
        # at the moment of sending, where event-loop jitter would otherwise bunch two creates together.
        self.pace = options.create_interval * 1.06
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

    def _emit(self, kind: str, job: RowMapping | None = None, **data: Any) -> None:
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
        for job in self.ledger.jobs(batch_id=self.batch_id, states=[RUNNING, SUCCEEDED]):
            await self._slots.acquire()
            self._spawn(self._watch(job, resumed=True))
        for job in self.ledger.jobs(batch_id=self.batch_id, states=[PENDING]):
            if self._ready(job):
                self._state.queue.append(job["id"])
        await self._submit_loop()
        while self._state.active:
            await asyncio.gather(*list(self._state.active), return_exceptions=True)
        self.write_manifest()
        if self._state.stop_reason:
            self.ledger.set_paused(self.batch_id, self._state.stop_reason)
        spent, flight = self.ledger.spend(self.batch_id)
        return RunResult(self.ledger.counts(self.batch_id), self._state.stop_reason, spent, flight)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._state.active.add(task)
        task.add_done_callback(self._state.active.discard)

    def _ready(self, job: RowMapping) -> bool:
        """A pipeline step waits for its parent's result; a first step is always ready."""
        if job["parent_job_id"] is None:
            return True
        parent = self.ledger.job(job["parent_job_id"])
        return parent is not None and parent["state"] == DONE

    async def _submit_loop(self) -> None:
        while not self._stopping.is_set():
            if not self._state.queue:
                if not self._state.active:
                    return
                await asyncio.sleep(0.05)
                continue
            await self._slots.acquire()
            if self._stopping.is_set():
                self._slots.release()
                return
            job_id = self._state.queue.popleft()
            job = self.ledger.job(job_id)
            if job is None or job["state"] != PENDING:
                self._slots.release()
                continue
            wait = self.ledger.reserve_slot(self.options.limiter_name, self.pace)
            if wait > 0:
                await asyncio.sleep(wait)
            self._spawn(self._submit(job))

    # -- one job --------------------------------------------------------------------------------------
    async def _submit(self, job: RowMapping) -> None:
        spec = catalog.get(job["model"])
        values = dict(job["input"])
        if self._stopping.is_set():  # stopped between scheduling and claiming: not sent, stays pending
            self._slots.release()
            return
        try:
            claimed = self.ledger.claim_for_submit(
                job["id"], self.options.lease_seconds, values, budget=self.options.max_credits
            )
        except BudgetExceededError:
            self._slots.release()
            self._state.queue.appendleft(job["id"])
            self.stop_submitting("budget")
            return
        if claimed is None:
            self._slots.release()
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
            self._slots.release()
            return
        except KieError as exc:
            self._refused(claimed, exc)
            self._slots.release()
            return
        if not self.ledger.mark_running(claimed, created.task_id):
            # The lease was taken from us (e.g. judged crashed): the task id is the first evidence.
            self.ledger.transition(
                job["id"], UNKNOWN, RUNNING, {"late_task_id": created.task_id}, task_id=created.task_id
            )
        running = self.ledger.job(job["id"])
        assert running is not None
        self._emit("running", running)
        await self._watch(running, resumed=False, immediate=created.status)

    def _refused(self, job: RowMapping, exc: KieError) -> None:
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

    async def _watch(self, job: RowMapping, *, resumed: bool, immediate: TaskStatus | None = None) -> None:
        try:
            spec = catalog.get(job["model"])
            if job["state"] == SUCCEEDED:
                status = TaskStatus(
                    job["task_id"], TaskState.SUCCEEDED, result_urls=tuple(job["result_urls"] or ())
                )
            else:
                finished = immediate or await self._wait(job, spec, resumed)
                if finished is None:
                    return
                status = finished
                moved = self.ledger.transition(
                    job["id"],
                    RUNNING,
                    SUCCEEDED,
                    {"cost_time": status.cost_time},
                    result_urls=list(status.result_urls),
                    cost_time=status.cost_time,
                    completed_at=time.time(),
                    actual_credits=status.credits_consumed,
                )
                if not moved:
                    return  # a callback receiver recorded it first and is saving the files
            await self._download(job, status)
        finally:
            self._slots.release()

    async def _callback_window(self, job: RowMapping, spec: ModelSpec) -> bool:
        """In webhook mode, watch the ledger until the safety-net time; True if a callback settled it."""
        scale = self.client.config.poll.scale
        window = 3.0 * spec.traits.typical_seconds * scale
        step = max(0.01, window / 12)
        waited = 0.0
        while waited < window:
            await asyncio.sleep(step)
            waited += step
            current = self.ledger.job(job["id"])
            if current is None or current["state"] != RUNNING:
                return True
        return False

    async def _wait(self, job: RowMapping, spec: ModelSpec, resumed: bool) -> TaskStatus | None:
        if self._poll is not None and not resumed and await self._callback_window(job, spec):
            return None  # the receiver recorded the result (and is saving the files)
        try:
            return await self.client.wait(
                job["task_id"],
                spec,
                deadline=self.options.deadline,
                poll_now=resumed or self._poll is not None,
                poll=self._poll,
            )
        except TaskFailedError as exc:
            self.ledger.transition(
                job["id"],
                RUNNING,
                FAILED,
                {"fail_code": exc.fail_code},
                error_code=exc.fail_code,
                error_message=exc.fail_msg,
                completed_at=time.time(),
            )
            self._emit("failed", job, error=str(exc))
        except (TimeoutError, KieError) as exc:
            self._emit("still_running", job, error=str(exc))
        return None

    async def _download(self, job: RowMapping, status: TaskStatus) -> None:
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

    def _release_children(self, parent: RowMapping) -> None:
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

    def _stem(self, job: RowMapping) -> str:
        base = job["output_name"] or job["row_key"] or job["task_id"] or job["id"]
        return safe_stem(f"{base}-s{job['step']}" if job["step"] else str(base))

    # -- manifest --------------------------------------------------------------------------------------
    def _manifest_row(self, job: RowMapping) -> dict[str, Any]:
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
            "files": [
                {"path": f["path"], "sha256": f["sha256"], "size": f["size"]}
                for f in self.ledger.files_of(job["id"])
            ],
            "error": job["error_message"] if job["state"] in (FAILED, REJECTED, UNKNOWN) else None,
        }

    def _append_manifest(self, job: RowMapping) -> None:
        with self.manifest_path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(self._manifest_row(job)) + "\n")

    def write_manifest(self) -> None:
        """Rewrite the manifest from the ledger (atomically), so the two always agree."""
        rows = [
            self._manifest_row(j)
            for j in self.ledger.jobs(batch_id=self.batch_id)
            if j["state"] in (DONE, FAILED, REJECTED, UNKNOWN)
        ]
        tmp = self.manifest_path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        tmp.replace(self.manifest_path)


def _first_media_field(spec: ModelSpec) -> str | None:
    for name, field_spec in spec.fields.items():
        if field_spec.media == "image":
            return name
    for name, field_spec in spec.fields.items():
        if field_spec.media is not None:
            return name
    return None
