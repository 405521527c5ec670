"""Runs sandbox tasks: one non-terminal state (or waiting → generating) → success|fail, then callbacks.

Each task is an asyncio task on the server's loop. A semaphore stands in for Kie's cap on concurrently
running tasks: a task that cannot get a slot shows `queuing` until one frees. A Market task shows the
one state its model shows in real traffic for its whole run (`kie.sandbox.recorded`). Credits are
charged on success at catalogue prices, as Kie does, moved by `price.drift`; failures cost nothing
unless the task meets `charge_failed`. Times come from the state's virtual clock, so `costTime` is the
whole seconds between `createTime` and `completeTime` at any time scale.

Callback faults (`kie.sandbox.faults`) are applied here: a delivery whose answer "timed out" after the
receiver had it, a duplicate signed anew, a callback before the record shows the end, a task's callbacks
last first, and a body that says the opposite of the record.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import hmac
import ipaddress
import json
from typing import Any, Protocol
from urllib.parse import urlparse

import httpx

from kie.catalog.spec import ModelSpec
from kie.sandbox import faults as named
from kie.sandbox import recorded
from kie.sandbox.clock import VirtualClock
from kie.sandbox.state import CallbackRecord, SandboxState, SandboxTask, StoredFile

TIMED_OUT = "timed out waiting for the receiver's answer (it had the body); resent on schedule"


class SandboxFamily(Protocol):
    api: str

    def callback_bodies(self, task: SandboxTask) -> list[dict[str, Any]]:
        """The callback bodies for a finished task, in delivery order (Suno sends several stages)."""
        ...


def sign(key: str, task_id: str, timestamp: int) -> str:
    """Kie's signature: base64(HMAC-SHA256(key, "<taskId>.<timestamp>")). It does not cover the body."""
    digest = hmac.new(key.encode(), f"{task_id}.{timestamp}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def is_loopback(url: str) -> bool:
    host = urlparse(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Engine:
    def __init__(self, state: SandboxState, families: dict[str, SandboxFamily]) -> None:
        self.state = state
        self.families = families
        self._slots: asyncio.Semaphore | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._http: httpx.AsyncClient | None = None

    @property
    def slots(self) -> asyncio.Semaphore:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.state.config.max_running)
        return self._slots

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self.state.config.callback_timeout)
        return self._http

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._http is not None:
            await self._http.aclose()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def start(self, task: SandboxTask, spec: ModelSpec, public_url: str) -> None:
        self._spawn(self._run(task, spec, public_url))

    async def _run(self, task: SandboxTask, spec: ModelSpec, public_url: str) -> None:
        state = self.state
        await asyncio.sleep(task.wait_seconds)
        if self.slots.locked():
            state.set_state(task, "queuing")
        async with self.slots:
            running = recorded.running_state(spec)
            if task.state != running:
                state.set_state(task, running)
            await asyncio.sleep(task.generate_seconds)
            early = self._deliverable(task) and state.fire(task, "callback.early")
            final = self._finish(task, spec, public_url, commit=not early)
        if early:
            await self._deliver(task, dataclasses.replace(task, state=final))
            await asyncio.sleep(state.config.scaled(state.config.early_callback_lead))
            state.set_state(task, final)
            return
        await self._deliver(task, task)

    def _deliverable(self, task: SandboxTask) -> bool:
        url = task.callback_url
        return bool(url) and (self.state.config.allow_external_callbacks or is_loopback(url or ""))

    def _finish(self, task: SandboxTask, spec: ModelSpec, public_url: str, *, commit: bool = True) -> str:
        """Complete the task (times, results, charge) and return its final state, which the record
        shows from now on, or, with `commit=False`, once the caller sets it."""
        state = self.state
        finished = state.now()
        task.complete_time = state.now_ms(finished)
        task.cost_time = VirtualClock.cost_seconds(task.create_time, task.complete_time)
        failure = self._failure(task)
        if failure is not None:
            task.fail_code, task.fail_msg = failure
            task.credits_consumed = state.charge_for(task, failed=True)
            state.settle(task, task.credits_consumed)
            final = "fail"
        else:
            task.expire_urls = task.expire_urls or state.fire(task, "download.expired")
            task.result_urls = self.make_results(task, spec, public_url)
            task.credits_consumed = state.charge_for(task, failed=False)
            state.settle(task, task.credits_consumed)
            final = "success"
        if commit:
            state.set_state(task, final, at=finished)
        return final

    def _failure(self, task: SandboxTask) -> tuple[str, str] | None:
        """(failCode, failMsg) when the task is to fail: a planned `fail_generation`, or a named
        terminal fault."""
        if task.fail_planned is not None:
            return task.fail_planned.fail_code, task.fail_planned.fail_msg
        for name in named.TERMINAL_FAULTS:
            if self.state.fire(task, name):
                return named.FAILURES[name]
        return None

    def make_results(self, task: SandboxTask, spec: ModelSpec, public_url: str) -> list[str]:
        """Register result files (rendered lazily on first download) and return their URLs."""
        config = self.state.config
        outputs = spec.outputs
        count = outputs.count
        if outputs.count_field and task.input.get(outputs.count_field) is not None:
            try:
                count = max(1, int(float(task.input[outputs.count_field])))
            except (TypeError, ValueError):
                count = outputs.count
        fmt = (
            str(task.input.get(outputs.format_field) or outputs.format)
            if outputs.format_field
            else outputs.format
        )
        now = self.state.now()
        ttl = 0.0 if task.expire_urls else config.scaled(config.url_ttl)
        urls = []
        for index in range(count):
            path = f"r/{task.task_id}/{index}.{fmt}"
            self.state.store(
                path,
                StoredFile(
                    content_type="",
                    created_at=now,
                    expires_at=now + ttl,
                    retained_until=now + config.scaled(config.retention),
                    recipe=(spec.id, spec.media, fmt, dict(task.input), index),
                    task_id=task.task_id,
                ),
            )
            urls.append(f"{public_url}/files/{path}")
        return urls

    # -- callbacks --------------------------------------------------------------------------------
    async def _deliver(self, task: SandboxTask, view: SandboxTask) -> None:
        """Deliver the callbacks of `task` as `view` shows it (the task itself, or its final state
        before the record shows it, for `callback.early`)."""
        url = task.callback_url
        if not url:
            return
        state = self.state
        source = view
        disagrees = state.fire(task, "callback.disagrees")
        if disagrees:
            source = _opposite(view)
        bodies = self.families[task.api].callback_bodies(source)
        if not disagrees:
            bodies = [self._decorate(view, body) for body in bodies]
        if len(bodies) > 1 and state.fire(task, "callback.out_of_order"):
            bodies.reverse()
        for body in bodies:
            await self._deliver_one(task, url, body)

    def _decorate(self, task: SandboxTask, body: dict[str, Any]) -> dict[str, Any]:
        """A Market callback's charge as charged (a failed task can cost something), plus the newer
        documented fields when the sandbox shows them."""
        data = body.get("data")
        if task.api != "market" or not isinstance(data, dict):
            return body
        if "creditsConsumed" in data:
            data["creditsConsumed"] = task.credits_consumed
        if self.state.config.recordinfo_fields == recorded.NEWER_FIELDS:
            data.update(recorded.newer_callback_fields(self.state, task))
        return body

    async def _deliver_one(self, task: SandboxTask, url: str, body: dict[str, Any]) -> None:
        """POST one callback, retrying on the documented schedule; each injected `callback_fail`
        fault fails one attempt without a request, `callback.timeout_after` fails one after the
        receiver had it, and a duplicate (`callback_duplicate`, `callback.duplicate`) follows the
        delivery, signed anew."""
        config = self.state.config
        if not (config.allow_external_callbacks or is_loopback(url)):
            self._record(
                task, url, body, {}, 0, None, "not delivered: callbacks go only to loopback addresses"
            )
            return
        duplicate = self.state.take_fault("callback", ("callback_duplicate",)) is not None
        duplicate = self.state.fire(task, "callback.duplicate") or duplicate
        timeout_after = self.state.fire(task, "callback.timeout_after")
        for attempt, delay in enumerate((0.0, *config.callback_retries), start=1):
            if delay:
                await asyncio.sleep(config.scaled(delay))
            injected = self.state.take_fault("callback", ("callback_fail",)) is not None
            late = timeout_after and attempt == 1
            if await self._post(task, url, body, attempt, injected_failure=injected, timed_out=late):
                if duplicate:
                    await self._post(task, url, body, attempt)
                return

    async def _post(
        self,
        task: SandboxTask,
        url: str,
        body: dict[str, Any],
        attempt: int,
        *,
        injected_failure: bool = False,
        timed_out: bool = False,
    ) -> bool:
        headers = {"Content-Type": "application/json"}
        key = self.state.config.webhook_key
        if key:
            with self.state.lock:
                timestamp = VirtualClock.signature_time(task.signed_at)
                task.signed_at = timestamp
            headers["X-Webhook-Timestamp"] = str(timestamp)
            headers["X-Webhook-Signature"] = sign(key, task.task_id, timestamp)
        if injected_failure:
            self._record(task, url, body, headers, attempt, None, "injected delivery failure")
            return False
        try:
            response = await self.http.post(url, content=json.dumps(body), headers=headers)
        except httpx.HTTPError as exc:
            self._record(task, url, body, headers, attempt, None, f"{exc.__class__.__name__}: {exc}")
            return False
        if timed_out:
            self._record(task, url, body, headers, attempt, None, TIMED_OUT)
            return False
        self._record(task, url, body, headers, attempt, response.status_code, None)
        return 200 <= response.status_code < 300

    def _record(
        self,
        task: SandboxTask,
        url: str,
        body: dict[str, Any],
        headers: dict[str, str],
        attempt: int,
        status: int | None,
        error: str | None,
    ) -> None:
        with self.state.lock:
            self.state.callbacks.append(
                CallbackRecord(
                    task.task_id, url, body, dict(headers), attempt, status, error, self.state.now()
                )
            )


def _opposite(task: SandboxTask) -> SandboxTask:
    """The task as a `callback.disagrees` body tells it: failed when it succeeded, and the reverse."""
    if task.state == "success":
        return dataclasses.replace(
            task,
            state="fail",
            fail_code="500",
            fail_msg="Internal Error, Please try again later",
            result_urls=[],
            credits_consumed=0.0,
        )
    return dataclasses.replace(task, state="success", fail_code=None, fail_msg=None)
