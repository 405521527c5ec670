"""`kie.Kie`: the blocking client. A driver for `kie.protocol.flows` over `httpx.Client`."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import tenacity

from kie import catalog
from kie.catalog.spec import ModelSpec
from kie.client._base import (
    USER_AGENT,
    ClientConfig,
    callback_for,
    check,
    content_length,
    httpx_args,
    make_config,
    prepare,
    read_envelope,
    retrying_args,
    sync_transport,
)
from kie.client.results import Generation, Result, Submission
from kie.config import Settings
from kie.protocol import common, flows
from kie.protocol.common import UploadedFile
from kie.protocol.envelope import Envelope, require_ok
from kie.protocol.families import Created
from kie.protocol.files import SavedFile
from kie.protocol.flows import Fetch, FetchFailed, Flow, Send, Sleep, StatusHook
from kie.protocol.polling import PollPolicy
from kie.protocol.retry import RetryPolicy, final_error
from kie.protocol.task import TaskState, TaskStatus


class Kie:
    """Blocking Kie.ai client.

        with Kie() as kie:                       # KIE_API_KEY from the environment
            gen = kie.generate("nano-banana-pro", prompt="a red fox", output_dir="out")
            print(gen.paths)

    One call validates (before spending), submits once, polls adaptively under a finite deadline,
    and saves every result to disk before its link expires.
    """

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
        transport: httpx.BaseTransport | None = None,
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
        self._http = httpx.Client(
            headers=self.config.headers(),
            timeout=self.config.timeout,
            transport=transport or sync_transport(),
        )
        # Result files live on other hosts; this client never carries the API key.
        self._files = httpx.Client(
            headers={"User-Agent": USER_AGENT},
            timeout=self.config.timeout,
            follow_redirects=True,
            transport=transport or sync_transport(),
        )

    def __enter__(self) -> Kie:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()
        self._files.close()

    # -- the driver -------------------------------------------------------------------------------
    def run(self, flow: Flow) -> Any:
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
                value = self._perform(effect)
            except Exception as exc:  # handed back into the flow, which decides
                error = exc

    def _perform(self, effect: Send | Sleep | Fetch) -> Any:
        if isinstance(effect, Sleep):
            time.sleep(max(0.0, effect.seconds))
            return None
        if isinstance(effect, Send):
            return self._send(effect)
        return self._fetch(effect)

    def _send(self, effect: Send) -> Envelope:
        request = effect.request
        pacer = self.config.create_pacer if request.kind == "create" else None
        if pacer is not None:
            time.sleep(pacer.reserve(time.monotonic()))
        try:
            for attempt in tenacity.Retrying(**retrying_args(self.config, request.kind, time.sleep)):
                with attempt:
                    while pacer is not None and (gap := pacer.depart(time.monotonic())) > 0:
                        time.sleep(gap)
                    response = self._http.request(**httpx_args(self.config, request))
                    return check(effect, read_envelope(response))
        except Exception as exc:
            final = final_error(request.kind, exc, label=request.name, model=effect.model)
            if final is exc:
                raise
            raise final from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _fetch(self, effect: Fetch) -> SavedFile:
        for attempt in tenacity.Retrying(**retrying_args(self.config, "download", time.sleep)):
            with attempt:
                return self._fetch_once(effect)
        raise AssertionError("unreachable")  # pragma: no cover

    def _fetch_once(self, effect: Fetch) -> SavedFile:
        sink = effect.sink
        try:
            with self._files.stream("GET", effect.url) as response:
                if response.status_code >= 400:
                    raise FetchFailed(effect.url, response.status_code, f"HTTP {response.status_code}")
                sink.start(response.headers.get("content-type"), content_length(response))
                for chunk in response.iter_bytes():
                    sink.write(chunk)
            return sink.finish()
        except FetchFailed:
            sink.abort()
            raise
        except (httpx.TransportError, ValueError) as exc:
            sink.abort()
            raise FetchFailed(effect.url, None, str(exc) or exc.__class__.__name__) from exc

    # -- the API ----------------------------------------------------------------------------------
    def submit(
        self,
        model: str | ModelSpec,
        input: Mapping[str, Any] | None = None,
        /,
        *,
        callback_url: str | None = None,
        allow_unknown: bool = False,
        **fields: Any,
    ) -> Submission:
        """Validate, upload local files, and create the task once. Returns as soon as Kie has an id."""
        prep = prepare(model, input, fields, settings=self.config.settings, allow_unknown=allow_unknown)
        values = self.run(flows.upload_inputs(prep.model, prep.input, upload_path=self.config.upload_path))
        created: Created = self.run(
            flows.submit(prep.model, values, callback_url or callback_for(self.config, prep.model))
        )
        return Submission(created.task_id, prep.model.id, prep.estimate, values, created.status)

    def wait(
        self,
        task_id: str,
        model: str | ModelSpec | None = None,
        *,
        deadline: float | None = None,
        on_status: StatusHook | None = None,
        poll_now: bool = False,
        poll: PollPolicy | None = None,
    ) -> TaskStatus:
        """Poll until the task is done. Raises `TaskFailedError`, or `TimeoutError` at the deadline."""
        spec = catalog.get(model) if isinstance(model, str) else model
        status: TaskStatus = self.run(
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
        return status

    def get(self, task_id: str, model: str | ModelSpec | None = None) -> TaskStatus:
        """The task's status right now (one request)."""
        spec = catalog.get(model) if isinstance(model, str) else model
        status: TaskStatus = self.run(flows.status_once(spec, task_id))
        return status

    def download(
        self, status: TaskStatus, output_dir: str | Path = ".", *, name: str | None = None
    ) -> list[Result]:
        saved = self.run(flows.download(status, Path(output_dir), name or status.task_id))
        return [Result.from_saved(s) for s in saved]

    def generate(
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
        on_submit: Any = None,
        on_status: StatusHook | None = None,
        **fields: Any,
    ) -> Generation:
        """Prompt to file on disk in one call."""
        sub = self.submit(model, input, callback_url=callback_url, allow_unknown=allow_unknown, **fields)
        if on_submit is not None:
            on_submit(sub)
        status = sub.status or self.wait(sub.task_id, sub.model, deadline=deadline, on_status=on_status)
        if status.state is TaskState.FAILED:
            raise flows.task_failed(status)
        results = self.download(status, output_dir, name=name)
        return Generation(sub.task_id, sub.model, status, tuple(results), sub.estimate)

    def upload(self, file: str | Path | bytes, *, mime_type: str | None = None) -> UploadedFile:
        """Upload a local file (or bytes) under a unique name; its `download_url` is usable as input."""
        content = file if isinstance(file, bytes) else Path(file)
        uploaded: UploadedFile = self.run(
            flows.upload(content, upload_path=self.config.upload_path, mime_type=mime_type)
        )
        return uploaded

    def credits(self) -> float:
        env = self._send(Send(common.credits_request()))
        return common.parse_credits(require_ok(env))

    def download_url(self, url: str) -> str:
        """A fresh, temporary (20 min) direct link for a Kie-generated file."""
        env = self._send(Send(common.download_url_request(url)))
        return common.parse_download_url(require_ok(env))
