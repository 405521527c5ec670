"""The steps every sandbox create endpoint shares, whatever its family's body shape.

A family's create handler calls `gate` (auth, request counting, injected faults, the account rate
limit), parses its own body, then `launch` (catalogue validation, the 402 credit check, the task and its
timeline, the dropped-connection fault). Only the body shape and the answer shape are family-specific.

Named create faults (`kie.sandbox.faults`) are drawn in `gate` from the stream of the request's content,
so each row of a batch meets the same create faults under any concurrency; the ones that strike after
the task exists (`create.500_after`, `create.drop_after_create`) are answered by `launch`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from kie import catalog
from kie.catalog.spec import ModelSpec
from kie.errors import KieError
from kie.sandbox import faults as named
from kie.sandbox.engine import Engine
from kie.sandbox.http import (
    REJECTIONS,
    DroppedResponse,
    authorise,
    envelope,
    malformed,
    public_url,
    request_fault,
)
from kie.sandbox.recorded import echo_input, running_state
from kie.sandbox.state import Fault, SandboxState, SandboxTask

RATE_LIMITED = "The request rate is too high; the request was rejected and not queued."


@dataclass(frozen=True)
class Admitted:
    key_id: str
    fault: Fault | None
    content_key: str = ""
    named_fault: str | None = None  # a named create fault that strikes after the task exists


def client_port(request: Request) -> int | None:
    return request.client.port if request.client else None


async def gate(
    state: SandboxState, request: Request, endpoint: str, *, rate_limited: bool = True
) -> Admitted | Response:
    """Authorise, count and apply faults; return the caller's identity or the answer to send."""
    key_id, denied = authorise(request, state)
    task_id = request.query_params.get("taskId")  # a status read: introspection shows which task
    details = {"taskId": task_id} if task_id else {}
    state.count(endpoint, key_id or "anonymous", client=client_port(request), **details)
    if denied is not None:
        return denied
    assert key_id is not None
    fault, answer = await request_fault(state, endpoint)
    if answer is not None:
        return answer
    if rate_limited and not state.allow_create(key_id):
        state.count(f"{endpoint}:429", key_id)
        return envelope(state, 429, RATE_LIMITED)
    # Drawn only for requests the limit let through, so a limit hit (a matter of timing) never shifts
    # the request's stream; a rejection drawn here gives its place in the window back.
    key = named.content_key(await _peek_json(request))
    name = state.create_fault(key)
    if name is not None and name not in AFTER_CREATE:
        if rate_limited:
            state.refund_create(key_id)
        state.count(f"{endpoint}:{name}", key_id)
        return _create_fault_answer(state, name)
    return Admitted(key_id, fault, key, name)


AFTER_CREATE = ("create.500_after", "create.drop_after_create")


def _create_fault_answer(state: SandboxState, name: str) -> Response:
    kind = name.removeprefix("create.")
    if kind in REJECTIONS:
        code, msg = REJECTIONS[kind]
        return envelope(state, code, msg)
    if kind == "drop":
        return DroppedResponse()
    return malformed()


async def _peek_json(request: Request) -> Any:
    """The request's JSON body (Starlette keeps it for the handler), or None."""
    try:
        return json.loads(await request.body())
    except (ValueError, ClientDisconnect):
        return None


async def json_body(request: Request) -> dict[str, Any] | None:
    try:
        body = await request.json()
    except (ValueError, ClientDisconnect):  # a client killed mid-request sends no usable body
        return None
    return body if isinstance(body, dict) else None


def launch(
    state: SandboxState,
    engine: Engine,
    request: Request,
    admitted: Admitted,
    *,
    spec: ModelSpec,
    body: Mapping[str, Any],
    values: Mapping[str, Any],
    callback_url: Any,
) -> SandboxTask | Response:
    """Validate against the catalogue, check credits, create and start the task."""
    try:
        checked = catalog.validate(spec, values, allow_unknown=True, allow_local_files=False)
    except KieError as exc:
        return envelope(state, 422, str(exc))
    est = catalog.estimate(spec, checked.input, overrides={})
    price = est.credits_each if est.credits_each is not None else state.config.unknown_price_credits
    if state.available() < price:
        return envelope(state, 402, "Credits insufficient. Please top up and try again.")
    created_at = state.now()
    market = spec.endpoint.api == "market"
    task = SandboxTask(
        task_id=state.new_task_id(),
        model=spec.id,
        api=spec.endpoint.api,
        key_id=admitted.key_id,
        request=dict(body),
        input=echo_input(values) if market else dict(values),
        callback_url=callback_url if isinstance(callback_url, str) and callback_url else None,
        create_time=state.now_ms(created_at),
        created_at=created_at,
        state=running_state(spec) if market else "waiting",
        content_key=admitted.content_key or named.content_key(dict(body)),
        estimate=price,
    )
    state.plan_task(task)
    task.wait_seconds, task.generate_seconds = state.plan_duration(
        spec.traits.typical_seconds, task.extra["duration_factor"]
    )
    state.hold(task, price)
    task.fail_planned = state.take_fault("generation", ("fail_generation",))
    task.expire_urls = state.take_fault("results", ("expire_urls",)) is not None
    if admitted.named_fault is not None:
        task.injected.append(admitted.named_fault)
    state.add_task(task)
    engine.start(task, spec, public_url(request, state.config.public_url))
    if admitted.fault is not None and admitted.fault.kind == "drop_after_create":
        return DroppedResponse()
    if admitted.named_fault == "create.drop_after_create":
        return DroppedResponse()
    if admitted.named_fault == "create.500_after":
        return envelope(state, *REJECTIONS["500"])
    return task


def find_task(state: SandboxState, task_id: str | None, api: str) -> SandboxTask | None:
    """A visible task of this family, or None (unknown, another family's, or not yet visible)."""
    if not task_id:
        return None
    with state.lock:
        task = state.tasks.get(task_id)
    if task is None or task.api != api:
        return None
    if state.now() < task.created_at + state.config.scaled(state.config.visible_after):
        return None
    return task


def legacy_spec(
    api: str, path: str, body: Mapping[str, Any], defaults: Mapping[str, Any] | None = None
) -> ModelSpec | None:
    """The catalogue model a flat legacy body addresses: same family and create path, and every field
    the model id fixes (Veo's `model`, Midjourney's `taskType`) equal to the body's (or its default)."""
    merged = {**(defaults or {}), **{k: v for k, v in body.items() if v is not None}}
    for spec in catalog.all_models():
        endpoint = spec.endpoint
        if endpoint.api != api or endpoint.create != path:
            continue
        if all(merged.get(key) == value for key, value in endpoint.fixed.items()):
            return spec
    return None


def flat_values(spec: ModelSpec, body: Mapping[str, Any]) -> dict[str, Any]:
    """A legacy body without the callback and the fields the model id fixes: what the catalogue checks."""
    skip = {"callBackUrl", "calBackUrl", *spec.endpoint.fixed}
    return {k: v for k, v in body.items() if k not in skip}
