"""Runs sandbox tasks: waiting → (queuing) → generating → success|fail, then callbacks.

Each task is an asyncio task on the server's loop. A semaphore stands in for Kie's cap on concurrently
running tasks: a task that cannot get a slot shows `queuing` until one frees. Credits are charged on
success at catalogue prices, as Kie does; failures cost nothing.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import json
import time
from typing import Any, Protocol
from urllib.parse import urlparse

import httpx

from kie import catalog
from kie.catalog.spec import ModelSpec
from kie.sandbox.state import CallbackRecord, SandboxState, SandboxTask, StoredFile


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
            state.set_state(task, "generating")
            await asyncio.sleep(task.generate_seconds)
            self._finish(task, spec, public_url)
        await self._deliver(task)

    def _finish(self, task: SandboxTask, spec: ModelSpec, public_url: str) -> None:
        state = self.state
        now_ms = int(time.time() * 1000)
        task.complete_time = now_ms
        task.cost_time = max(
            1, round((now_ms - task.create_time) / 1000 / max(state.config.time_scale, 1e-9))
        )
        if task.fail_planned is not None:
            task.fail_code = task.fail_planned.fail_code
            task.fail_msg = task.fail_planned.fail_msg
            state.settle(task, 0.0)
            state.set_state(task, "fail")
            return
        task.result_urls = self.make_results(task, spec, public_url)
        est = catalog.estimate(spec, task.input, overrides={})
        task.credits_consumed = (
            est.credits_each if est.credits_each is not None else state.config.unknown_price_credits
        )
        state.settle(task, task.credits_consumed)
        state.set_state(task, "success")

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
    async def _deliver(self, task: SandboxTask) -> None:
        url = task.callback_url
        if not url:
            return
        for body in self.families[task.api].callback_bodies(task):
            await self._deliver_one(task, url, body)

    async def _deliver_one(self, task: SandboxTask, url: str, body: dict[str, Any]) -> None:
        """POST one callback, retrying on the documented schedule; each injected `callback_fail`
        fault fails one attempt, and `callback_duplicate` delivers the body twice."""
        config = self.state.config
        if not (config.allow_external_callbacks or is_loopback(url)):
            self._record(
                task, url, body, {}, 0, None, "not delivered: callbacks go only to loopback addresses"
            )
            return
        duplicate = self.state.take_fault("callback", ("callback_duplicate",)) is not None
        for attempt, delay in enumerate((0.0, *config.callback_retries), start=1):
            if delay:
                await asyncio.sleep(config.scaled(delay))
            injected = self.state.take_fault("callback", ("callback_fail",)) is not None
            if await self._post(task, url, body, attempt, injected_failure=injected):
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
    ) -> bool:
        headers = {"Content-Type": "application/json"}
        key = self.state.config.webhook_key
        if key:
            timestamp = int(time.time())
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
