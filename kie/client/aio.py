"""`kie.AsyncKie`: the asyncio client. The same flows as `kie.Kie`, driven over `httpx.AsyncClient`.

Many concurrent generations share one connection pool, one create pacer and one poll limiter (Kie
allows about 10 status reads per second per key), so 1,000 waiting tasks do not become 1,000 timers
hammering the API.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
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
from kie.protocol.polling import Pacer, PollPolicy
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
        status_reads_per_second: float = STATUS_READS_PER_SECOND,
        max_connections: int = 50,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config: ClientConfig = make_config(
            api_key=api_key,
            base_url=base_url,
            upload_base_url=upload_base_url,
            settings=settings,
            retry=retry,
            poll=poll,
            create_interval=create_interval,
        )
        # Creates get a quarter of the connections, at most 16 (enough for 160 creates per 10 s even if
        # each took a second to answer); the rest are shared by status reads and downloads, so the
        # total stays within `max_connections` (at least 2).
        create_connections = min(16, max(1, max_connections // 4))
        shared = max(1, max_connections - create_connections)
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
        await self._http.aclose()
        await self._files.aclose()
        await self._creates.aclose()

    # -- the driver -------------------------------------------------------------------------------
    async def run(self, flow: Flow) -> Any:
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
        if pacer is not None:
            await asyncio.sleep(pacer.reserve(time.monotonic()))
        try:
            async for attempt in tenacity.AsyncRetrying(**retrying_args(self.config, request.kind)):
                with attempt:
                    self.requests_sent += 1
                    if create:
                        await self._create_gap()
                        response = await self._creates.request(**httpx_args(self.config, request))
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
    ) -> TaskStatus:
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
                on_status=on_status,
            )
        )
        return result

    async def get(self, task_id: str, model: str | ModelSpec | None = None) -> TaskStatus:
        spec = catalog.get(model) if isinstance(model, str) else model
        result: TaskStatus = await self.run(flows.status_once(spec, task_id))
        return result

    async def download(
        self, status: TaskStatus, output_dir: str | Path = ".", *, name: str | None = None
    ) -> list[Result]:
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
        on_status: StatusHook | None = None,
        **fields: Any,
    ) -> Generation:
        sub = await self.submit(
            model, input, callback_url=callback_url, allow_unknown=allow_unknown, **fields
        )
        status = sub.status or await self.wait(sub.task_id, sub.model, deadline=deadline, on_status=on_status)
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
        """Run many generations concurrently; each slot holds its `Generation` or the error it raised."""

        async def one(model: str, values: Mapping[str, Any]) -> Generation | KieError:
            try:
                return await self.generate(model, values, output_dir=output_dir, deadline=deadline)
            except KieError as exc:
                return exc

        return list(await asyncio.gather(*(one(m, v) for m, v in requests)))

    async def upload(self, file: str | Path | bytes, *, mime_type: str | None = None) -> UploadedFile:
        content = file if isinstance(file, bytes) else Path(file)
        result: UploadedFile = await self.run(
            flows.upload(content, upload_path=self.config.upload_path, mime_type=mime_type)
        )
        return result

    async def credits(self) -> float:
        env = await self._send(Send(common.credits_request()))
        return common.parse_credits(require_ok(env))

    async def download_url(self, url: str) -> str:
        env = await self._send(Send(common.download_url_request(url)))
        return common.parse_download_url(require_ok(env))
