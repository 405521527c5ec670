"""Sandbox steps the legacy image families (4o Image, Flux Kontext) share: the flat-body create, the
record-info preamble, and turning the generic task state into the documented encodings.

Unknown task ids answer `{"code":422,"msg":"record is null"}` (the legacy 422 wording, kie-api.md §4.1,
§4.4, §8.1) and tasks older than the retention window answer "Temporarily supports records within 14
days". A failed task's code is its `fail_code` when the family documents that code, else the family's
generic failure code, so record-info and the callback always agree.
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
from kie.sandbox.state import SandboxState, SandboxTask
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
    admitted = await gate(state, request, endpoint)
    if not isinstance(admitted, Admitted):
        return admitted
    body = await json_body(request)
    if body is None:
        return envelope(state, 400, "Request body is not valid JSON")
    spec = legacy_spec(api, request.url.path, body, defaults)
    if spec is None:
        return envelope(state, 422, unsupported(body))
    values = flat_values(spec, body)
    problem = check(spec, values) if check is not None else None
    if problem:
        return envelope(state, 422, problem)
    task = launch(
        state,
        engine,
        request,
        admitted,
        spec=spec,
        body=body,
        values=values,
        callback_url=body.get("callBackUrl"),
    )
    if not isinstance(task, SandboxTask):
        return task
    return envelope(state, 200, "success", {"taskId": task.task_id})


async def record_task(
    state: SandboxState, request: Request, *, api: str, endpoint: str
) -> SandboxTask | Response:
    """Auth, counting, faults and the status rate limit of a record-info call; then its task."""
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
    return known_task(state, task_id, api)


def known_task(state: SandboxState, task_id: str, api: str) -> SandboxTask | Response:
    task = find_task(state, task_id, api)
    if task is None:
        return envelope(state, 422, RECORD_IS_NULL)
    if state.now() >= task.created_at + state.config.scaled(state.config.retention):
        return envelope(state, 422, TOO_OLD)
    return task


def param_json(task: SandboxTask) -> str:
    """The flat body as received, as the JSON string legacy records carry."""
    return json.dumps(task.request, separators=(",", ":"))


def error_code(task: SandboxTask, documented: tuple[int, ...], generic: int) -> int:
    code = task.fail_code or ""
    return int(code) if code.isdigit() and int(code) in documented else generic


def error_message(task: SandboxTask, defaults: Mapping[int, str], code: int) -> str:
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


def iso_time(ms: int | None) -> str | None:
    """`2024-03-20T10:25:00Z`: the form the Flux Kontext docs examples use."""
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def finished_at(state: SandboxState, task: SandboxTask) -> float:
    """Sandbox clock time at which the task reached its terminal state."""
    return next((at for name, at in reversed(task.history) if name in ("success", "fail")), state.now())
