"""`kie.AsyncKie`: the asyncio client. The same flows as `kie.Kie`, driven over `httpx.AsyncClient`.

Many concurrent generations share one connection pool, one create pacer and one poll limiter (Kie
allows about 10 status reads per second per key), so 1,000 waiting tasks do not become 1,000 timers
hammering the API.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import httpx
import tenacity

from kie import catalog
from kie.catalog.spec import ModelSpec
from kie.client._base import (
    USER_AGENT,
    ClientConfig,
    async_transport,
    callback_for,
    check,
    content_length,
    create_retry,
    httpx_args,
    make_config,
    prepare,
    read_envelope,
    retrying_args,
)
from kie.client.results import Generation, Result, Submission
from kie.config import Settings
from kie.errors import KieError
from kie.protocol import common, flows
from kie.protocol.common import UploadedFile
from kie.protocol.envelope import Envelope, require_ok
from kie.protocol.families import Created
from kie.protocol.files import SavedFile
from kie.protocol.flows import Fetch, FetchFailed, Flow, Send, Sleep, StatusHook
from kie.protocol.polling import Pacer, PollClock, PollPolicy
from kie.protocol.retry import RetryPolicy, final_error
from kie.protocol.task import TaskState, TaskStatus

STATUS_READS_PER_SECOND = 8.0  # under Kie's documented 10/s per key


class AsyncKie:
    """Asyncio Kie.ai client; see `kie.Kie` for the semantics, which are identical."""

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        upload_base_url: str | None = None,
        settings: Settings | None = None,
        retry: RetryPolicy | None = None,
        poll: PollPolicy | None = None,
        create_interval: float | None = 0.5,
        learned: PollClock | None = None,
        status_reads_per_second: float = STATUS_READS_PER_SECOND,
        max_connections: int = 50,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """Build a client; nothing is sent until the first call. Share one across many tasks.

        Anything left as None comes from the environment, then the config file (`KIE_CONFIG`), so the
        same code runs against `kie sandbox` and against Kie.ai.

        Args:
            api_key: The Kie.ai API key; defaults to `KIE_API_KEY`. It goes only to `base_url` and
                `upload_base_url`, never to the hosts results are downloaded from.
            base_url: Root of the generation API; defaults to `KIE_BASE_URL`, else https://api.kie.ai.
                Point it at `kie sandbox` to try things without spending credits.
            upload_base_url: Root of the file upload API, a separate host on Kie.ai; defaults to
                `KIE_UPLOAD_BASE_URL`.
            settings: Complete settings (e.g. from `kie.config.load_settings`) to use instead of reading
                the environment; `api_key`, `base_url` and `upload_base_url` still win when given.
            retry: How transient failures are retried. A create is resent only when Kie certainly did
                not create the task (429, 455, or a connection that never reached it), so nothing is
                paid twice.
            poll: When to ask about a running task. The default schedule waits for most of the model's
                typical duration, then polls at a growing interval, on the clock `KIE_POLL_SCALE` sets.
            learned: How long tasks really take, per model and options, to place polls near completion;
                `kie.runner.priors.load_priors(ledger)` fills one from a ledger's finished jobs.
                Defaults to an empty clock that learns as this client's tasks finish.
            create_interval: Minimum seconds between two creates, shared by every concurrent task, which
                keeps them under Kie's 20 creates per 10 seconds; None turns pacing off.
            status_reads_per_second: Cap on status reads across all waiting tasks, below Kie's 10 per
                second per key, so thousands of waits do not trip the rate limit; 0 turns it off.
            max_connections: Connections in all; a quarter (at most 16) are kept for creates so polls
                and downloads never hold them up.
            transport: The httpx transport for every request, for tests (`httpx.MockTransport`) or
                custom networking; defaults to one with TCP_NODELAY.

        Raises:
            ConfigurationError: No API key was found, or `KIE_POLL_SCALE` or a setting is malformed.
        """
        self.config: ClientConfig = make_config(
            api_key=api_key,
            base_url=base_url,
            upload_base_url=upload_base_url,
            settings=settings,
            retry=retry,
            poll=poll,
            create_interval=create_interval,
            learned=learned,
        )
        # Creates get a quarter of the connections, at most 16 (enough for 160 creates per 10 s even if
        # each took a second to answer); the rest are shared by status reads and downloads, so the
        # total stays within `max_connections` (at least 2).
        create_connections = min(16, max(1, max_connections // 4))
        shared = max(1, max_connections - create_connections)
        self._create_slots = asyncio.Semaphore(create_connections)
        limits = httpx.Limits(max_connections=shared, max_keepalive_connections=shared)
        self._http = httpx.AsyncClient(
            headers=self.config.headers(),
            timeout=self.config.timeout,
            transport=transport or async_transport(limits),
        )
        self._files = httpx.AsyncClient(
            headers={"User-Agent": USER_AGENT},
            timeout=self.config.timeout,
            follow_redirects=True,
            transport=transport or async_transport(limits),
        )
        # Creates travel on their own small pool, outside the admission queue: they are already paced, and
        # waiting behind a burst of polls would bunch them on the wire into the account's rate limit.
        self._creates = httpx.AsyncClient(
            headers=self.config.headers(),
            timeout=self.config.timeout,
            transport=transport or async_transport(httpx.Limits(max_connections=create_connections)),
        )
        scale = self.config.poll.scale
        self._status_pacer = Pacer(scale / status_reads_per_second if status_reads_per_second > 0 else 0.0)
        # A shared gate for reads instead of this client's own pacer: the batch engine and the callback
        # receiver set it to the ledger's status limiter, so every process on one account stays within
        # Kie's 10 reads per second together.
        self.read_gate: Callable[[], Awaitable[None]] | None = None
        # At most as many requests in the pool as it has connections: httpcore rescans its whole wait
        # queue on every release, which turns thousands of waiting coroutines into quadratic CPU.
        self.max_connections = max_connections
        self._admission = asyncio.Semaphore(shared)
        self.requests_sent = 0

    async def __aenter__(self) -> AsyncKie:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the client's connections; `async with AsyncKie() as kie:` calls this for you.

        Files already saved stay on disk, and a task submitted but not waited for keeps running on Kie:
        fetch it later with `get` and `download`.
        """
        await self._http.aclose()
        await self._files.aclose()
        await self._creates.aclose()

    # -- the driver -------------------------------------------------------------------------------
    async def run(self, flow: Flow) -> Any:
        """Drive a flow to completion, performing each effect it yields."""
        value: Any = None
        error: BaseException | None = None
        while True:
            try:
                effect = flow.throw(error) if error is not None else flow.send(value)
            except StopIteration as stop:
                return stop.value
            value, error = None, None
            try:
                value = await self._perform(effect)
            except Exception as exc:
                error = exc

    async def _perform(self, effect: Send | Sleep | Fetch) -> Any:
        if isinstance(effect, Sleep):
            await asyncio.sleep(max(0.0, effect.seconds))
            return None
        if isinstance(effect, Send):
            return await self._send(effect)
        return await self._fetch(effect)

    async def _send(self, effect: Send) -> Envelope:
        request = effect.request
        create = request.kind == "create"
        pacer = (
            self.config.create_pacer if create else (self._status_pacer if request.method == "GET" else None)
        )
        if not create and request.method == "GET" and self.read_gate is not None:
            await self.read_gate()
        elif pacer is not None:
            await asyncio.sleep(pacer.reserve(time.monotonic()))
        depart = effect.on_depart
        try:
            async for attempt in tenacity.AsyncRetrying(**create_retry(self.config, effect)):
                with attempt:
                    self.requests_sent += 1
                    if create:
                        # A free create connection first: a job claimed at departure must not then
                        # queue for a socket, where a crash would strand it as `unknown`.
                        async with self._create_slots:
                            await self._create_gap()
                            left = pacer.last_departure if pacer is not None else 0.0
                            try:
                                if depart is not None:
                                    hook, depart = depart, None
                                    hook()
                                response = await self._creates.request(**httpx_args(self.config, request))
                            finally:
                                if pacer is not None:
                                    pacer.answered(left, time.monotonic())
                    else:
                        async with self._admission:
                            response = await self._http.request(**httpx_args(self.config, request))
                    return check(effect, read_envelope(response))
        except Exception as exc:
            final = final_error(request.kind, exc, label=request.name, model=effect.model)
            if final is exc:
                raise
            raise final from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def _create_gap(self) -> None:
        pacer = self.config.create_pacer
        while pacer is not None and (gap := pacer.depart(time.monotonic())) > 0:
            await asyncio.sleep(gap)

    async def _fetch(self, effect: Fetch) -> SavedFile:
        async for attempt in tenacity.AsyncRetrying(**retrying_args(self.config, "download")):
            with attempt:
                async with self._admission:
                    return await self._fetch_once(effect)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _fetch_once(self, effect: Fetch) -> SavedFile:
        sink = effect.sink
        try:
            async with self._files.stream("GET", effect.url) as response:
                if response.status_code >= 400:
                    raise FetchFailed(effect.url, response.status_code, f"HTTP {response.status_code}")
                sink.start(response.headers.get("content-type"), content_length(response))
                async for chunk in response.aiter_bytes():
                    sink.write(chunk)
            return sink.finish()
        except FetchFailed:
            sink.abort()
            raise
        except (httpx.TransportError, ValueError) as exc:
            sink.abort()
            raise FetchFailed(effect.url, None, str(exc) or exc.__class__.__name__) from exc

    # -- the API ----------------------------------------------------------------------------------
    async def submit(
        self,
        model: str | ModelSpec,
        input: Mapping[str, Any] | None = None,
        /,
        *,
        callback_url: str | None = None,
        allow_unknown: bool = False,
        **fields: Any,
    ) -> Submission:
        """Validate, upload local files, and create the task once; return as soon as Kie has its id.

        Use this rather than `generate` to wait elsewhere (another process, a webhook), or to record the
        id before anything else can go wrong: once this returns, the paid task cannot be lost.

        Args:
            model: A model id or alias from the catalogue (`kie models` lists them), or a `ModelSpec`.
            input: The model's input fields as a mapping; `**fields` are merged over it.
            callback_url: Where Kie POSTs the result when the task ends; defaults to `KIE_CALLBACK_URL`.
                Models whose endpoint requires one get a placeholder, and are polled as usual.
            allow_unknown: Send fields the catalogue does not know instead of rejecting them, for a
                parameter Kie added after this release.
            **fields: Input fields as keywords, e.g. `prompt="a red fox"`. Local files (a path or bytes)
                in media fields are uploaded first and replaced by their URL.

        Returns:
            The `Submission`: task id, model id, price estimate and the input as sent. Its `status` is
            already final for the few endpoints that answer synchronously.

        Raises:
            UnknownModelError: The model matches nothing; the message suggests close names.
            ValidationError: An input is wrong. Raised before any request, so nothing is spent.
            APIStatusError: Kie refused the create (`AuthenticationError`, `InsufficientCreditsError`,
                `RateLimitError` after retries, ...); no task exists.
            SubmissionUnknownError: The create was sent but no answer came back; Kie may have created
                the task, so it is never resent automatically.
            TransportError: An upload of a local input failed on the network.
        """
        prep = prepare(model, input, fields, settings=self.config.settings, allow_unknown=allow_unknown)
        values = await self.run(
            flows.upload_inputs(prep.model, prep.input, upload_path=self.config.upload_path)
        )
        callback = callback_url or callback_for(self.config, prep.model)
        created: Created = await self.run(flows.submit(prep.model, values, callback))
        return Submission(created.task_id, prep.model.id, prep.estimate, values, created.status)

    async def wait(
        self,
        task_id: str,
        model: str | ModelSpec | None = None,
        *,
        deadline: float | None = None,
        on_status: StatusHook | None = None,
        poll_now: bool = False,
        poll: PollPolicy | None = None,
        input: Mapping[str, Any] | None = None,
    ) -> TaskStatus:
        """Poll until the task is done, at an interval that grows with its age (few requests per task).

        Args:
            task_id: The id from `submit`, or from an earlier run.
            model: The task's model id or `ModelSpec`. Kie has a status endpoint per model family, and
                the model's typical duration sets the first poll; None assumes a Market-family model
                that takes about 30 seconds.
            deadline: Seconds to wait in all before giving up; defaults to the configured task deadline
                (30 minutes unless changed), so nothing waits forever.
            on_status: Called as `on_status(status, polls)` after every status read that Kie answered,
                e.g. to show progress.
            poll_now: Ask at once instead of first waiting for most of the typical duration; for a
                task that has already been running a while.
            poll: A polling schedule for this call only, instead of the client's.
            input: The task's input, so polls follow what tasks with the same options (resolution,
                duration, …) have taken before; `generate` passes it.

        Returns:
            The final `TaskStatus`, whose state is `SUCCEEDED` and whose `result_urls` are ready for
            `download`.

        Raises:
            TaskFailedError: The task failed on Kie (failed tasks are not charged).
            TimeoutError: The deadline passed; the task may still be running, so `get` it later.
            NotFoundError: Kie has no such task, even after a grace window for new tasks.
        """
        spec = catalog.get(model) if isinstance(model, str) else model
        result: TaskStatus = await self.run(
            flows.wait(
                spec,
                task_id,
                policy=poll or self.config.poll,
                clock=time.monotonic,
                deadline=deadline or self.config.settings.timeouts.task_deadline,
                learned=self.config.learned,
                poll_now=poll_now,
                values=input,
                on_status=on_status,
            )
        )
        return result

    async def get(self, task_id: str, model: str | ModelSpec | None = None) -> TaskStatus:
        """The task's status right now, in one request, without waiting.

        Args:
            task_id: The task's id.
            model: The task's model id or `ModelSpec`, which picks the family's status endpoint; None
                assumes a Market-family model.

        Returns:
            The `TaskStatus` as Kie reports it, running or finished.

        Raises:
            NotFoundError: Kie has no such task (new tasks can take a moment to appear).
        """
        spec = catalog.get(model) if isinstance(model, str) else model
        result: TaskStatus = await self.run(flows.status_once(spec, task_id))
        return result

    async def download(
        self, status: TaskStatus, output_dir: str | Path = ".", *, name: str | None = None
    ) -> list[Result]:
        """Save every result of a finished task to disk, verified, before its link expires.

        Kie's result links expire; an expired one is refreshed through `download_url` and fetched again,
        so a task finished hours ago can still be saved.

        Args:
            status: The finished task's `TaskStatus`, from `wait` or `get`.
            output_dir: Folder for the files; created if missing.
            name: File name stem: files are `<name>-1.png`, `<name>-2.png`, ...; defaults to the task id.

        Returns:
            One `Result` per output, in Kie's order, each already on disk with its size and SHA-256.
            Text outputs (lyrics, descriptions) are saved as files too.

        Raises:
            DownloadError: A result could not be fetched or saved; the task is paid for, so retry.
        """
        saved = await self.run(flows.download(status, Path(output_dir), name or status.task_id))
        return [Result.from_saved(s) for s in saved]

    async def generate(
        self,
        model: str | ModelSpec,
        input: Mapping[str, Any] | None = None,
        /,
        *,
        output_dir: str | Path = ".",
        name: str | None = None,
        deadline: float | None = None,
        callback_url: str | None = None,
        allow_unknown: bool = False,
        on_submit: Callable[[Submission], object] | None = None,
        on_status: StatusHook | None = None,
        **fields: Any,
    ) -> Generation:
        """Prompt to file on disk in one call: validate, submit once, wait, and download.

            gen = await kie.generate("nano-banana-pro", prompt="a red fox", output_dir="out")

        Args:
            model: A model id or alias from the catalogue (`kie models` lists them), or a `ModelSpec`.
            input: The model's input fields as a mapping; `**fields` are merged over it.
            output_dir: Folder the results are saved in; created if missing.
            name: File name stem for the results (`<name>-1.png`, ...); defaults to the task id.
            deadline: Seconds to wait for the task before giving up; defaults to the configured task
                deadline (30 minutes unless changed).
            callback_url: Where Kie POSTs the result when the task ends, in addition to the polling
                done here; defaults to `KIE_CALLBACK_URL`.
            allow_unknown: Send fields the catalogue does not know instead of rejecting them, for a
                parameter Kie added after this release.
            on_submit: Called (not awaited) with the `Submission` as soon as the task exists, before
                waiting: the place to record the task id, so a crash while waiting loses nothing paid for.
            on_status: Called as `on_status(status, polls)` after every status read, e.g. for progress.
            **fields: Input fields as keywords, e.g. `prompt="a red fox"`. Local files (a path or bytes)
                in media fields are uploaded first.

        Returns:
            The `Generation`: task id, final status, the saved `results` (`.paths` for the files) and
            the price estimate (`.credits`).

        Raises:
            UnknownModelError: The model matches nothing; the message suggests close names.
            ValidationError: An input is wrong. Raised before any request, so nothing is spent.
            APIStatusError: Kie refused a request (bad key, no credits, rate limit after retries, ...).
            SubmissionUnknownError: The create was sent but no answer came back; it is never resent.
            TaskFailedError: The task failed on Kie (failed tasks are not charged).
            TimeoutError: The deadline passed; the task may still be running on Kie.
            DownloadError: A finished result could not be saved; the task is paid for, so retry.
        """
        sub = await self.submit(
            model, input, callback_url=callback_url, allow_unknown=allow_unknown, **fields
        )
        if on_submit is not None:
            on_submit(sub)
        status = sub.status or await self.wait(
            sub.task_id, sub.model, deadline=deadline, on_status=on_status, input=sub.input
        )
        if status.state is TaskState.FAILED:
            raise flows.task_failed(status)
        results = await self.download(status, output_dir, name=name)
        return Generation(sub.task_id, sub.model, status, tuple(results), sub.estimate)

    async def generate_many(
        self,
        requests: Iterable[tuple[str, Mapping[str, Any]]],
        *,
        output_dir: str | Path = ".",
        deadline: float | None = None,
    ) -> list[Generation | KieError]:
        """Run many generations concurrently; each slot holds its `Generation` or the error it raised.

        One failure does not cancel the rest, so a batch of paid tasks is never abandoned halfway. For
        batches that must survive a crash, use `kie batch`, which keeps a ledger.

        Args:
            requests: `(model, input)` pairs, one per generation.
            output_dir: Folder every result is saved in.
            deadline: Seconds each task may take; defaults to the configured task deadline.

        Returns:
            One entry per request, in order: its `Generation`, or the `KieError` it raised.
        """

        async def one(model: str, values: Mapping[str, Any]) -> Generation | KieError:
            try:
                return await self.generate(model, values, output_dir=output_dir, deadline=deadline)
            except KieError as exc:
                return exc

        return list(await asyncio.gather(*(one(m, v) for m, v in requests)))

    async def upload(self, file: str | Path | bytes, *, mime_type: str | None = None) -> UploadedFile:
        """Upload a local file or bytes; the returned `download_url` can be passed as a model input.

        `generate` and `submit` already upload local paths given as inputs; call this to reuse one
        upload across several tasks. Each upload gets a unique name, because Kie overwrites same-named
        files and may serve a cached old copy.

        Args:
            file: A path to a local file, or the content itself as bytes.
            mime_type: The content type; guessed from a path's extension when None, and
                `application/octet-stream` for bytes.

        Returns:
            The `UploadedFile`, whose `download_url` is a link to the content that models can fetch.

        Raises:
            APIStatusError: Kie refused the upload.
            TransportError: The network failed after retries.
        """
        content = file if isinstance(file, bytes) else Path(file)
        result: UploadedFile = await self.run(
            flows.upload(content, upload_path=self.config.upload_path, mime_type=mime_type)
        )
        return result

    async def credits(self) -> float:
        """The account's remaining credits, e.g. to check before a large batch.

        Returns:
            The credit balance Kie reports for this API key.

        Raises:
            AuthenticationError: The API key is missing or wrong.
        """
        env = await self._send(Send(common.credits_request()))
        return common.parse_credits(require_ok(env))

    async def download_url(self, url: str) -> str:
        """A fresh direct link for a file Kie generated, valid for about 20 minutes.

        Result links expire; `download` refreshes them itself, so this is for handing a link to
        something else (a browser, another service).

        Args:
            url: The file's original result URL, as found in a `TaskStatus`.

        Returns:
            A temporary URL that downloads the file without an API key.

        Raises:
            APIStatusError: Kie refused, e.g. the URL is not a Kie-generated file.
        """
        env = await self._send(Send(common.download_url_request(url)))
        return common.parse_download_url(require_ok(env))
