"""Sandbox pieces the successFlag families share (Midjourney, Luma, Aleph): the record-info gate, the
create flow for a flat body, and the record fields derived from the generic task state.

Not a family itself (it is absent from `SANDBOX_FAMILIES`); the family modules import it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from kie.catalog.spec import ModelSpec
from kie.sandbox.engine import Engine
from kie.sandbox.http import authorise, envelope, request_fault
from kie.sandbox.state import SandboxState, SandboxTask
from kie.sandbox.tasks import Admitted, flat_values, launch

RUNNING_STATES = ("waiting", "queuing", "generating")


async def status_gate(state: SandboxState, request: Request, endpoint: str) -> str | Response:
    """Auth, counting, faults and the 10/s status limit of a record-info call: the task id or the answer."""
    key_id, denied = authorise(request, state)
    task_id = request.query_params.get("taskId")
    state.count(
        endpoint,
        key_id or "anonymous",
        taskId=task_id,
        client=request.client.port if request.client else None,
    )
    if denied:
        return denied
    assert key_id is not None
    _, answer = await request_fault(state, endpoint)
    if answer is not None:
        return answer
    if not state.allow_status(key_id):
        return envelope(state, 429, "Maximum query rate exceeded: 10 requests per second per API key.")
    if not task_id:
        return envelope(state, 400, "taskId parameter is required")
    return task_id


def start(
    state: SandboxState,
    engine: Engine,
    request: Request,
    admitted: Admitted,
    spec: ModelSpec,
    body: Mapping[str, Any],
    **extra: Any,
) -> Response:
    """Launch a flat-body task and answer like every legacy create: `{"taskId": ...}` only."""
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
    return envelope(state, 200, "success", {"taskId": task.task_id})


def param_json(task: SandboxTask) -> str:
    """The request echoed as a JSON string (`paramJson`, `promptJson`): the body as sent, keys sorted
    like the docs' examples."""
    return json.dumps(task.request, separators=(",", ":"), sort_keys=True)


def iso_time(ms: int | None) -> str | None:
    """Midjourney's and Aleph's schemas type their times as ISO strings ("2024-03-20T10:30:00Z")."""
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def error_code(task: SandboxTask) -> int | str | None:
    """`errorCode` is an integer in every legacy schema; a non-numeric planned code is passed as is."""
    if task.state != "fail" or task.fail_code is None:
        return None
    return int(task.fail_code) if task.fail_code.isdigit() else task.fail_code


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
