"""Sandbox plumbing the legacy families share (4o Image, Flux Kontext, Midjourney, Veo, Runway, Aleph,
Luma; Suno and Market borrow the gates): the flat-body create, the record-info gate and lookup, the record
fields derived from the generic task state, the time formats of the records, and the files a finished
task shows beside its results (covers, thumbnails, uncropped or stitched videos).

Not a family itself (it is absent from `SANDBOX_FAMILIES`); the family modules import it.

- Every legacy create answers `{"taskId": ...}` only (Veo's 4K adds its still empty URL lists); the body
  is flat (the values plus the fields the model id fixes and `callBackUrl`).
- A status read is authorised, counted, faulted and held to the 10/s status limit like a Market one.
- Unknown task ids answer `{"code":422,"msg":"record is null"}` (the legacy 422 wording, kie-api.md §4.1,
  §4.4, §8.1) unless a family documents otherwise (Aleph's 404 "Task not found"). The 4o and Flux
  families also answer "Temporarily supports records within 14 days" for tasks older than the retention
  window, as their docs list; the others show such a record (Runway flags it with `expireFlag`).
- `errorCode` is an integer in every legacy schema; a non-numeric planned code is passed as is. A family
  that lists its failure codes shows a failed task's `fail_code` when it is one of them, else its
  generic failure code, so record-info and the callback always agree.
- Times: "YYYY-MM-DD HH:mm:ss" (Veo, Runway, Suno examples; UTC, since no source names a zone) and ISO
  strings ("2024-03-20T10:30:00Z": Flux, Midjourney and Aleph schemas). 4o and Luma send ms integers.
- Extra files (covers, thumbnails, …) are registered on first use, next to the results and with their
  lifetimes, so every URL a record or callback shows really downloads.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from kie.catalog.spec import ModelSpec
from kie.sandbox.engine import Engine
from kie.sandbox.http import authorise, envelope, request_fault
from kie.sandbox.state import SandboxState, SandboxTask, StoredFile
from kie.sandbox.tasks import (
    Admitted,
    client_port,
    find_task,
    flat_values,
    gate,
    json_body,
    launch,
    legacy_spec,
)

RECORD_IS_NULL = "record is null"
TOO_OLD = "Temporarily supports records within 14 days"
STATUS_RATE = "Maximum query rate exceeded: 10 requests per second per API key."

Check = Callable[[ModelSpec, Mapping[str, Any]], str | None]
Unsupported = Callable[[Mapping[str, Any]], str]
Record = Callable[[SandboxTask], Any]


class LegacySandbox:
    """What every legacy sandbox family holds: the sandbox state and the engine running its tasks."""

    api = ""

    def __init__(self, state: SandboxState, engine: Engine) -> None:
        self.state = state
        self.engine = engine


# -- create ---------------------------------------------------------------------------------------
async def admit(
    state: SandboxState, request: Request, endpoint: str
) -> tuple[Admitted, dict[str, Any]] | Response:
    """Auth, counting, faults and the create limit of a create call; then its JSON body."""
    admitted = await gate(state, request, endpoint)
    if not isinstance(admitted, Admitted):
        return admitted
    body = await json_body(request)
    if body is None:
        return envelope(state, 400, "Request body is not valid JSON")
    return admitted, body


def start(
    state: SandboxState,
    engine: Engine,
    request: Request,
    admitted: Admitted,
    spec: ModelSpec,
    body: Mapping[str, Any],
    *,
    answer: Callable[[str], dict[str, Any]] = lambda task_id: {"taskId": task_id},
    **extra: Any,
) -> Response:
    """Launch a flat-body task (the body's values, its `callBackUrl`), keep `extra` with it, and answer
    like every legacy create: `{"taskId": ...}` only, unless the family documents more (`answer`)."""
    task = launch(
        state,
        engine,
        request,
        admitted,
        spec=spec,
        body=body,
        values=flat_values(spec, body),
        callback_url=body.get("callBackUrl"),
    )
    if not isinstance(task, SandboxTask):
        return task
    task.extra.update(extra)
    return envelope(state, 200, "success", answer(task.task_id))


async def create_flat(
    state: SandboxState,
    engine: Engine,
    request: Request,
    *,
    api: str,
    endpoint: str,
    defaults: Mapping[str, Any] | None = None,
    unsupported: Unsupported,
    check: Check | None = None,
) -> Response:
    """A legacy create: flat body → catalogue model → family check → task; answers `{taskId}`."""
    admitted = await admit(state, request, endpoint)
    if isinstance(admitted, Response):
        return admitted
    key, body = admitted
    spec = legacy_spec(api, request.url.path, body, defaults)
    if spec is None:
        return envelope(state, 422, unsupported(body))
    problem = check(spec, flat_values(spec, body)) if check is not None else None
    if problem:
        return envelope(state, 422, problem)
    return start(state, engine, request, key, spec, body)


# -- record-info ----------------------------------------------------------------------------------
async def status_gate(state: SandboxState, request: Request, endpoint: str) -> str | Response:
    """Auth, counting, faults and the 10/s status limit of a record-info call: the task id or the answer."""
    key_id, denied = authorise(request, state)
    task_id = request.query_params.get("taskId")
    state.count(endpoint, key_id or "anonymous", taskId=task_id, client=client_port(request))
    if denied is not None:
        return denied
    assert key_id is not None
    _, answer = await request_fault(state, endpoint)
    if answer is not None:
        return answer
    if not state.allow_status(key_id):
        return envelope(state, 429, STATUS_RATE)
    if not task_id:
        return envelope(state, 400, "taskId parameter is required")
    return task_id


def known_task(
    state: SandboxState,
    task_id: str,
    api: str,
    *,
    retention: bool = False,
    missing: tuple[int, str] = (422, RECORD_IS_NULL),
) -> SandboxTask | Response:
    """The family's task `task_id`, or the answer for an unknown one (with `retention`, a too old one too)."""
    task = find_task(state, task_id, api)
    if task is None:
        return envelope(state, *missing)
    if retention and state.now() >= task.created_at + state.config.scaled(state.config.retention):
        return envelope(state, 422, TOO_OLD)
    return task


async def record_answer(
    state: SandboxState,
    request: Request,
    record: Record,
    *,
    api: str,
    endpoint: str,
    retention: bool = False,
    missing: tuple[int, str] = (422, RECORD_IS_NULL),
) -> Response:
    """A whole record-info call: the gate, the task lookup, then `record(task)` as the envelope's data."""
    task_id = await status_gate(state, request, endpoint)
    if isinstance(task_id, Response):
        return task_id
    task = known_task(state, task_id, api, retention=retention, missing=missing)
    if not isinstance(task, SandboxTask):
        return task
    return envelope(state, 200, "success", record(task))


# -- record fields --------------------------------------------------------------------------------
def param_json(task: SandboxTask, *, sort_keys: bool = False) -> str:
    """The flat body as received, as the JSON string legacy records carry (`paramJson`, `promptJson`);
    Midjourney, Luma, Aleph and Veo sort its keys like their docs' examples."""
    return json.dumps(task.request, separators=(",", ":"), sort_keys=sort_keys)


def error_code(task: SandboxTask) -> int | str | None:
    """A failed task's `errorCode`: an integer, or a non-numeric planned code as is; None otherwise."""
    if task.state != "fail" or task.fail_code is None:
        return None
    return int(task.fail_code) if task.fail_code.isdigit() else task.fail_code


def documented_code(task: SandboxTask, documented: tuple[int, ...], generic: int) -> int:
    """A failed task's code among the family's `documented` ones, else its `generic` failure code."""
    code = task.fail_code or ""
    return int(code) if code.isdigit() and int(code) in documented else generic


def documented_message(task: SandboxTask, defaults: Mapping[int, str], code: int) -> str:
    return task.fail_msg or defaults.get(code, "Image generation task failed")


def generation_progress(state: SandboxState, task: SandboxTask) -> float:
    """How far the generation is, 0…1, from the time spent generating; 1 only on success."""
    if task.state == "success":
        return 1.0
    started = next((at for name, at in reversed(task.history) if name == "generating"), None)
    if started is None:
        return 0.0
    ended = task.history[-1][1] if task.terminal else state.now()
    return min(0.99, max(0.0, (ended - started) / max(task.generate_seconds, 1e-9)))


def finished_at(state: SandboxState, task: SandboxTask) -> float:
    """Sandbox clock time at which the task reached its terminal state."""
    return next((at for name, at in reversed(task.history) if name in ("success", "fail")), state.now())


def callbacks_exhausted(state: SandboxState, task: SandboxTask) -> bool:
    """True once every callback attempt for a task failed (or the URL could not be called at all)."""
    if not task.callback_url:
        return False
    with state.lock:
        records = [c for c in state.callbacks if c.task_id == task.task_id]
    if any(c.status is not None and 200 <= c.status < 300 for c in records):
        return False
    if any(c.attempt == 0 for c in records):
        return True
    return len(records) >= 1 + len(state.config.callback_retries)


# -- times ----------------------------------------------------------------------------------------
def _utc(ms: int | None, fmt: str) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime(fmt)


def iso_time(ms: int | None) -> str | None:
    """`2024-03-20T10:25:00Z`: the form the Flux, Midjourney and Aleph docs use."""
    return _utc(ms, "%Y-%m-%dT%H:%M:%SZ")


def clock(ms: int | None) -> str | None:
    """Kie's legacy "YYYY-MM-DD HH:mm:ss" (the docs' examples); UTC, since no source names a zone."""
    return _utc(ms, "%Y-%m-%d %H:%M:%S")


# -- files beside the results ---------------------------------------------------------------------
def companion_url(
    state: SandboxState,
    task: SandboxTask,
    name: str,
    *,
    fmt: str,
    media: str,
    values: Mapping[str, Any] | None = None,
) -> str | None:
    """The URL of file `name` of a finished task, registered (rendered lazily) the first time it is asked
    for; None while the task has no results to stand beside."""
    if not task.result_urls:
        return None
    with state.lock:
        known: dict[str, str] = task.extra.setdefault("companions", {})
        if name in known:
            return known[name]
        result_path = task.result_urls[0].split("/files/", 1)
        base, first = result_path[0], result_path[-1]
        template = state.files.get(first)
        now = state.now()
        path = f"r/{task.task_id}/{name}.{fmt}"
        state.files[path] = StoredFile(
            content_type="",
            created_at=now,
            expires_at=template.expires_at if template else now + state.config.scaled(state.config.url_ttl),
            retained_until=template.retained_until if template else float("inf"),
            recipe=(task.model, media, fmt, {**task.input, **(values or {}), "companion": name}, 0),
            task_id=task.task_id,
        )
        known[name] = f"{base}/files/{path}"
        return known[name]
