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
from kie.protocol.families import family_for
from kie.protocol.task import TaskStatus, loads_maybe
from kie.runner.finish import finish
from kie.runner.limits import read_gate
from kie.store import DONE, SUBMITTING, UNKNOWN, Ledger
from kie.webhooks.verify import DEFAULT_TOLERANCE, WebhookError, parse_body, task_id_of, verify

log = logging.getLogger("kie.webhooks")
CALLBACK_PATH = "/kie/callback/{token}"
MAX_BODY = 1 << 20
BODY_TIMEOUT = 10.0  # seconds to receive a callback's body; Kie itself waits 15 s for our answer
WORKERS = 16  # re-reads under way at once; the status pacer spaces them anyway
Hook = Callable[[str, Mapping[str, Any]], None]
Work = tuple[int, str, str, Mapping[str, Any]]  # inbox id, job id, task id, callback body


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
        body_timeout: float = BODY_TIMEOUT,
        client_factory: Callable[[], AsyncKie] | None = None,
        on_event: Hook | None = None,
    ) -> None:
        self.ledger = ledger
        self.settings = settings
        self.output_dir = output_dir
        self.key = key
        self.tolerance = tolerance
        self.max_body = max_body
        self.body_timeout = body_timeout
        self.client_factory = client_factory or (lambda: AsyncKie(settings=settings, create_interval=None))
        self.on_event = on_event or (lambda kind, data: None)
        self.client: AsyncKie | None = None
        # Accepted callbacks wait here for a fixed set of workers: a burst of thousands costs a queue
        # entry each, not a coroutine each competing with the answers Kie is waiting for.
        self._queue: asyncio.Queue[Work] | None = None
        self._workers: list[asyncio.Task[None]] = []
        self._arrivals: list[tuple[tuple[str, str, Mapping[str, Any], str | None], asyncio.Future[Any]]] = []
        self._committer: asyncio.Task[None] | None = None
        self.accepted = 0
        self.refused = 0

    # -- HTTP ---------------------------------------------------------------------------------------
    async def _body(self, request: Request) -> bytes | None:
        """The whole body, or None past `max_body`; a client that trickles it is cut off after
        `body_timeout` seconds (a slow sender must not hold a connection open forever)."""
        raw = bytearray()
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > self.max_body:
                return None
        return bytes(raw)

    async def handle(self, request: Request) -> JSONResponse:
        try:
            raw = await asyncio.wait_for(self._body(request), self.body_timeout)
        except asyncio.TimeoutError:
            return self._refuse(408, "callback body not received in time")
        if raw is None:
            return self._refuse(413, "callback body too large")
        token = request.path_params["token"]
        try:
            if self.key:
                verified = verify(request.headers, raw, self.key, self.tolerance, replay=None)
                body, task_id = verified.body, verified.task_id
                replay_key: str | None = f"{task_id}.{verified.timestamp}"
            else:
                body = parse_body(raw)
                task_id = task_id_of(body) or ""
                replay_key = None
        except WebhookError as exc:
            if self.ledger.job_by_token(token) is None:  # an unknown URL says so before the signature
                return self._refuse(403, "unknown callback token")
            return self._refuse(401 if exc.reason in ("signature", "timestamp", "replay") else 400, str(exc))
        if not task_id:
            return self._refuse(400, "callback names no task id")
        queue = self._start()
        # Recorded before the answer, with the replay check: a receiver killed now finds it again on
        # restart, and a replay after a restart of `kie serve` is refused too. Callbacks that arrive
        # together share one transaction (`_commit`), so a burst costs a commit per group, not each.
        verdict, inbox_id, job_id = await self._record(token, task_id, body, replay_key)
        if verdict == "unknown token":
            return self._refuse(403, "unknown callback token")
        if verdict == "other task":
            return self._refuse(403, "callback task does not belong to this job")
        if verdict == "replay" or inbox_id is None or job_id is None:
            return self._refuse(401, "The callback was already received (replay).")
        self.accepted += 1
        queue.put_nowait((inbox_id, job_id, task_id, body))
        return JSONResponse({"code": 200, "msg": "success"})

    async def _record(
        self, token: str, task_id: str, body: Mapping[str, Any], replay_key: str | None
    ) -> tuple[str, int | None, str | None]:
        future: asyncio.Future[tuple[str, int | None, str | None]] = (
            asyncio.get_running_loop().create_future()
        )
        self._arrivals.append(((token, task_id, body, replay_key), future))
        if self._committer is None or self._committer.done():
            self._committer = asyncio.get_running_loop().create_task(self._commit())
        return await future

    async def _commit(self) -> None:
        """Record every callback that has arrived, a group per transaction, in a thread: while one
        group commits, the next one gathers (group commit)."""
        window = 2 * (self.tolerance or DEFAULT_TOLERANCE)
        while self._arrivals:
            group, self._arrivals = self._arrivals, []
            try:
                answers = await asyncio.to_thread(
                    self.ledger.accept_callbacks, [item for item, _ in group], window=window
                )
            except Exception as exc:  # the ledger failed: these callbacks are not accepted, Kie retries
                for _, future in group:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), answer in zip(group, answers, strict=True):
                if not future.done():
                    future.set_result(answer)

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
        # A job still submitting or unknown lost its create answer: this callback may be the evidence.
        lost = job["state"] in (SUBMITTING, UNKNOWN)
        try:
            hint: TaskStatus | None = family_for(spec).parse_callback(body)
        except (ValueError, KieError):
            hint = None
        if not lost and hint is not None and not hint.state.terminal:
            self.on_event("progress", {"job": job_id, "task_id": task_id, "progress": hint.progress})
            return
        assert self.client is not None
        try:
            status = await self.client.get(task_id, spec)  # the API, not the body, is authoritative
        except KieError as exc:
            self.on_event("refetch_failed", {"job": job_id, "error": str(exc)})
            return
        if lost and not self._attach(job, status):
            return
        if status.state.terminal:
            done = await self.client.run(
                finish(self.ledger, job_id, status, output_dir=self.output_dir, via="callback")
            )
            if done.error is not None:
                self.on_event("download_failed", {"job": job_id, "error": str(done.error)})
            elif done.state == DONE:
                self.on_event("done", {"job": job_id, "task_id": status.task_id})

    def _attach(self, job: Mapping[str, Any], status: TaskStatus) -> bool:
        """Attach a lost job to the task a callback names, once Kie has confirmed that task exists
        (we just read it) and, where Kie echoes the callback URL, that it carries this job's token."""
        echoed = _echoed_callback(status)
        if echoed is not None and not echoed.rstrip("/").endswith(job["callback_token"]):
            self.on_event("evidence_refused", {"job": job["id"], "task_id": status.task_id})
            return False
        for _attempt in range(3):
            try:
                attached = self.ledger.attach_task(
                    job["id"],
                    status.task_id,
                    from_states=(SUBMITTING, UNKNOWN),
                    detail={"via": "callback", "confirmed": True},
                )
            except KieError as exc:
                self.on_event("evidence_refused", {"job": job["id"], "error": str(exc)})
                return False
            if attached:
                self.on_event("reconciled", {"job": job["id"], "task_id": status.task_id})
                return True
            # The job moved while we attached (its worker marked it unknown, or recorded the task id
            # itself): look again rather than drop an acknowledged callback.
            current = self.ledger.job(job["id"])
            if current is None:
                return False
            if current["task_id"] == status.task_id:
                return True
            if current["state"] not in (SUBMITTING, UNKNOWN):
                return False
        return False

    def _start(self) -> asyncio.Queue[Work]:
        """The work queue, with its client and workers started on first use (a mounted app's lifespan
        may never run: Starlette does not run a mounted app's lifespan). Callbacks an earlier receiver
        accepted but did not finish come first."""
        if self._queue is None:
            if self.client is None:
                self.client = self.client_factory()
                if self.client.read_gate is None:
                    self.client.read_gate = read_gate(self.ledger, scale=self.client.config.poll.scale)
            self._queue = asyncio.Queue()
            for item in self.ledger.open_callbacks():
                self._queue.put_nowait((item["id"], item["job_id"], item["task_id"], item["body"]))
            loop = asyncio.get_running_loop()
            self._workers = [loop.create_task(self._work(self._queue)) for _ in range(WORKERS)]
        return self._queue

    async def _work(self, queue: asyncio.Queue[Work]) -> None:
        while True:
            inbox_id, job_id, task_id, body = await queue.get()
            try:
                await self._process(job_id, task_id, body)
            except Exception:  # one bad callback must not stop the worker; the poller's net remains
                log.exception("processing the callback for job %s failed", job_id)
            finally:
                self.ledger.callback_done(inbox_id)
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
            self._start()  # at once: callbacks a killed receiver left open are processed now
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


def _echoed_callback(status: TaskStatus) -> str | None:
    """The callback URL Kie recorded for the task (Market `param.callBackUrl`), when it shows one."""
    raw = status.raw if isinstance(status.raw, Mapping) else {}
    param = loads_maybe(raw.get("param"))
    url = param.get("callBackUrl") if isinstance(param, Mapping) else None
    return url if isinstance(url, str) and url else None
