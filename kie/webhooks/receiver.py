"""The callback receiver: a small ASGI app that turns Kie's callbacks into ledger progress.

Each job's callback URL ends in an unguessable token (`/kie/callback/<token>`), so a callback names its
job even when the create answer that carried the task id was lost: that is how an `unknown` job is
recovered instead of paid for again. A callback is only a hint. After verification the receiver answers at
once (Kie waits 15 s at most), then re-reads the task from the API, and the API's answer is what the ledger
records. Duplicate deliveries are harmless because every ledger move is a compare-and-set.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from kie import catalog
from kie.client import AsyncKie
from kie.config import Settings
from kie.errors import KieError
from kie.protocol import flows
from kie.protocol.families import family_for
from kie.protocol.task import TaskState, TaskStatus
from kie.store import DONE, FAILED, RUNNING, SUBMITTING, SUCCEEDED, UNKNOWN, Ledger
from kie.webhooks.verify import DEFAULT_TOLERANCE, ReplayCache, WebhookError, parse_body, task_id_of, verify

log = logging.getLogger("kie.webhooks")
CALLBACK_PATH = "/kie/callback/{token}"
MAX_BODY = 1 << 20
WORKERS = 16  # re-reads under way at once; the status pacer spaces them anyway
Hook = Callable[[str, Mapping[str, Any]], None]


def callback_url(public_url: str, token: str) -> str:
    return f"{public_url.rstrip('/')}/kie/callback/{token}"


class Receiver:
    def __init__(
        self,
        *,
        ledger: Ledger,
        settings: Settings,
        output_dir: Path,
        key: str | None = None,
        tolerance: float | None = DEFAULT_TOLERANCE,
        max_body: int = MAX_BODY,
        client_factory: Callable[[], AsyncKie] | None = None,
        on_event: Hook | None = None,
    ) -> None:
        self.ledger = ledger
        self.settings = settings
        self.output_dir = output_dir
        self.key = key
        self.tolerance = tolerance
        self.max_body = max_body
        self.replay = ReplayCache(window=2 * (tolerance or DEFAULT_TOLERANCE))
        self.client_factory = client_factory or (lambda: AsyncKie(settings=settings, create_interval=None))
        self.on_event = on_event or (lambda kind, data: None)
        self.client: AsyncKie | None = None
        # Accepted callbacks wait here for a fixed set of workers: a burst of thousands costs a queue
        # entry each, not a coroutine each competing with the answers Kie is waiting for.
        self._queue: asyncio.Queue[tuple[str, str, Mapping[str, Any]]] | None = None
        self._workers: list[asyncio.Task[None]] = []
        self.accepted = 0
        self.refused = 0

    # -- HTTP ---------------------------------------------------------------------------------------
    async def handle(self, request: Request) -> JSONResponse:
        raw = b""
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > self.max_body:
                return self._refuse(413, "callback body too large")
        job = self.ledger.job_by_token(request.path_params["token"])
        if job is None:
            return self._refuse(403, "unknown callback token")
        try:
            if self.key:
                verified = verify(request.headers, raw, self.key, self.tolerance, replay=self.replay)
                body, task_id = verified.body, verified.task_id
            else:
                body = parse_body(raw)
                task_id = task_id_of(body) or ""
        except WebhookError as exc:
            return self._refuse(401 if exc.reason in ("signature", "timestamp", "replay") else 400, str(exc))
        if not task_id:
            return self._refuse(400, "callback names no task id")
        if job["task_id"] and job["task_id"] != task_id:
            return self._refuse(403, "callback task does not belong to this job")
        self.accepted += 1
        self._start().put_nowait((job["id"], task_id, body))
        return JSONResponse({"code": 200, "msg": "success"})

    def _refuse(self, status: int, reason: str) -> JSONResponse:
        self.refused += 1
        log.info("callback refused (%s): %s", status, reason)
        return JSONResponse({"code": status, "msg": reason}, status_code=status)

    # -- after the answer -----------------------------------------------------------------------------
    async def _process(self, job_id: str, task_id: str, body: Mapping[str, Any]) -> None:
        job = self.ledger.job(job_id)
        if job is None:
            return
        spec = catalog.get(job["model"])
        # A job still submitting or unknown lost its create answer: this callback is the evidence.
        lost = job["state"] in (SUBMITTING, UNKNOWN)
        if lost and self.ledger.transition(
            job_id, (SUBMITTING, UNKNOWN), RUNNING, {"via": "callback"}, task_id=task_id
        ):
            self.on_event("reconciled", {"job": job_id, "task_id": task_id})
        try:
            hint: TaskStatus | None = family_for(spec).parse_callback(body)
        except (ValueError, KieError):
            hint = None
        if hint is not None and not hint.state.terminal:
            self.on_event("progress", {"job": job_id, "task_id": task_id, "progress": hint.progress})
            return
        assert self.client is not None
        try:
            status = await self.client.get(task_id, spec)  # the API, not the body, is authoritative
        except KieError as exc:
            self.on_event("refetch_failed", {"job": job_id, "error": str(exc)})
            return
        await self._record(job_id, status)

    async def _record(self, job_id: str, status: TaskStatus) -> None:
        if status.state is TaskState.FAILED:
            self.ledger.transition(
                job_id,
                RUNNING,
                FAILED,
                {"via": "callback"},
                error_code=status.fail_code,
                error_message=status.fail_msg,
            )
            return
        if status.state is not TaskState.SUCCEEDED:
            return
        moved = self.ledger.transition(
            job_id,
            RUNNING,
            SUCCEEDED,
            {"via": "callback"},
            result_urls=list(status.result_urls),
            cost_time=status.cost_time,
            completed_at=time.time(),
            actual_credits=status.credits_consumed,
        )
        if not moved:
            return  # someone (a poller, an earlier duplicate) is already saving it
        job = self.ledger.job(job_id)
        assert job is not None and self.client is not None
        stem = job["output_name"] or job["row_key"] or status.task_id
        try:
            saved = await self.client.run(flows.download(status, self.output_dir, str(stem)))
        except KieError as exc:
            self.on_event("download_failed", {"job": job_id, "error": str(exc)})
            return
        self.ledger.record_files(
            job_id,
            [
                {
                    "url": s.url,
                    "path": str(s.path),
                    "size": s.size,
                    "sha256": s.sha256,
                    "content_type": s.content_type,
                }
                for s in saved
            ],
        )
        self.ledger.transition(job_id, SUCCEEDED, DONE, {"via": "callback"}, downloaded_at=time.time())
        self.on_event("done", {"job": job_id, "task_id": status.task_id})

    def _start(self) -> asyncio.Queue[tuple[str, str, Mapping[str, Any]]]:
        """The work queue, with its client and workers started on first use: a mounted app's lifespan
        may never run (Starlette does not run a mounted app's lifespan)."""
        if self._queue is None:
            if self.client is None:
                self.client = self.client_factory()
            self._queue = asyncio.Queue()
            loop = asyncio.get_running_loop()
            self._workers = [loop.create_task(self._work(self._queue)) for _ in range(WORKERS)]
        return self._queue

    async def _work(self, queue: asyncio.Queue[tuple[str, str, Mapping[str, Any]]]) -> None:
        while True:
            job_id, task_id, body = await queue.get()
            try:
                await self._process(job_id, task_id, body)
            except Exception:  # one bad callback must not stop the worker; the poller's net remains
                log.exception("processing the callback for job %s failed", job_id)
            finally:
                queue.task_done()

    async def drain(self) -> None:
        """Wait for callbacks already accepted to be processed (tests, shutdown)."""
        if self._queue is not None:
            await self._queue.join()

    async def stop(self) -> None:
        await self.drain()
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers, self._queue = [], None
        if self.client is not None:
            await self.client.close()
            self.client = None

    # -- the app ----------------------------------------------------------------------------------------
    def app(self) -> Starlette:
        @contextlib.asynccontextmanager
        async def lifespan(_: Starlette) -> AsyncIterator[None]:
            self.client = self.client_factory()
            try:
                yield
            finally:
                await self.stop()

        return Starlette(routes=[Route(CALLBACK_PATH, self.handle, methods=["POST"])], lifespan=lifespan)


def app(
    *,
    ledger: Ledger,
    settings: Settings,
    output_dir: Path,
    key: str | None = None,
    tolerance: float | None = DEFAULT_TOLERANCE,
) -> Starlette:
    """A mountable ASGI app (FastAPI: `app.mount("/", kie.webhooks.app(...))`) receiving Kie callbacks."""
    return Receiver(
        ledger=ledger, settings=settings, output_dir=output_dir, key=key, tolerance=tolerance
    ).app()
