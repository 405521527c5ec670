"""The Market API in the sandbox: createTask, recordInfo, the playground alias, and its callbacks.

Shapes are the recorded real ones (kie-api.md §3): `param` is a JSON string with a double-encoded
`input` holding exactly the keys the client sent; `resultJson` is `""` until success; `failCode` and
`failMsg` stay null until failure; `costTime` is seconds; no `updateTime` in recordInfo; `progress`
appears only for Sora 2 models.
"""

from __future__ import annotations

import json
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kie import catalog
from kie.errors import KieError
from kie.sandbox.engine import Engine
from kie.sandbox.http import DroppedResponse, authorise, envelope, public_url, request_fault
from kie.sandbox.state import SandboxState, SandboxTask


def param_string(task: SandboxTask) -> str:
    param: dict[str, Any] = {"input": json.dumps(task.input, separators=(",", ":")), "model": task.model}
    if task.callback_url:
        param["callBackUrl"] = task.callback_url
    return json.dumps(param, separators=(",", ":"))


def record(task: SandboxTask, *, now: float) -> dict[str, Any]:
    data: dict[str, Any] = {
        "taskId": task.task_id,
        "model": task.model,
        "state": task.state,
        "param": param_string(task),
        "resultJson": json.dumps({"resultUrls": task.result_urls}) if task.state == "success" else "",
        "failCode": task.fail_code if task.state == "fail" else None,
        "failMsg": task.fail_msg if task.state == "fail" else None,
        "costTime": task.cost_time if task.terminal else None,
        "completeTime": task.complete_time if task.terminal else None,
        "createTime": task.create_time,
    }
    if task.model.startswith("sora-2"):
        data["progress"] = 100 if task.terminal else (50 if task.state == "generating" else 0)
    return data


class MarketSandbox:
    api = "market"

    def __init__(self, state: SandboxState, engine: Engine) -> None:
        self.state = state
        self.engine = engine

    def routes(self) -> list[Route]:
        routes = []
        for prefix in ("/api/v1/jobs", "/api/v1/playground"):
            routes.append(Route(f"{prefix}/createTask", self.create, methods=["POST"]))
            routes.append(Route(f"{prefix}/recordInfo", self.record_info, methods=["GET"]))
        return routes

    async def create(self, request: Request) -> Response:
        state = self.state
        key_id, denied = authorise(request, state)
        state.count(
            "createTask", key_id or "anonymous", client=request.client.port if request.client else None
        )
        if denied:
            return denied
        assert key_id is not None
        fault, answer = await request_fault(state, "createTask")
        if answer is not None:
            return answer
        if not state.allow_create(key_id):
            return envelope(
                state, 429, "The request rate is too high; the request was rejected and not queued."
            )
        try:
            body = await request.json()
        except ValueError:
            return envelope(state, 400, "Request body is not valid JSON")
        if not isinstance(body, dict) or not isinstance(body.get("model"), str):
            return envelope(state, 422, "model is required")
        model_id = body["model"]
        try:
            spec = catalog.get(model_id)
        except KieError:
            return envelope(state, 422, f"The model {model_id} is not supported")
        if spec.id != model_id or spec.endpoint.api != "market":
            return envelope(state, 422, f"The model {model_id} is not supported")
        values = body.get("input") or {}
        if not isinstance(values, dict):
            return envelope(state, 422, "input must be an object")
        try:
            checked = catalog.validate(spec, values, allow_unknown=True, allow_local_files=False)
        except KieError as exc:
            return envelope(state, 422, str(exc))
        est = catalog.estimate(spec, checked.input, overrides={})
        price = est.credits_each if est.credits_each is not None else state.config.unknown_price_credits
        if state.balance < price:
            return envelope(state, 402, "Credits insufficient. Please top up and try again.")
        callback = body.get("callBackUrl")
        task = SandboxTask(
            task_id=state.new_task_id(),
            model=spec.id,
            api="market",
            key_id=key_id,
            request=body,
            input=values,
            callback_url=callback if isinstance(callback, str) else None,
            create_time=int(time.time() * 1000),
            created_at=state.now(),
        )
        task.wait_seconds, task.generate_seconds = state.plan_duration(spec.traits.typical_seconds)
        task.fail_planned = state.take_fault("generation", ("fail_generation",))
        task.expire_urls = state.take_fault("results", ("expire_urls",)) is not None
        state.add_task(task)
        self.engine.start(task, spec, public_url(request, state.config.public_url))
        if fault is not None and fault.kind == "drop_after_create":
            return DroppedResponse()
        return envelope(state, 200, "success", {"taskId": task.task_id, "recordId": task.task_id})

    async def record_info(self, request: Request) -> Response:
        state = self.state
        key_id, denied = authorise(request, state)
        state.count(
            "recordInfo",
            key_id or "anonymous",
            taskId=request.query_params.get("taskId"),
            client=request.client.port if request.client else None,
        )
        if denied:
            return denied
        assert key_id is not None
        _, answer = await request_fault(state, "recordInfo")
        if answer is not None:
            return answer
        if not state.allow_status(key_id):
            return envelope(state, 429, "Maximum query rate exceeded: 10 requests per second per API key.")
        task_id = request.query_params.get("taskId")
        if not task_id:
            return envelope(state, 400, "taskId parameter is required")
        with state.lock:
            task = state.tasks.get(task_id)
        hidden = task is not None and state.now() < task.created_at + state.config.scaled(
            state.config.visible_after
        )
        if task is None or hidden or task.api != "market":
            return envelope(state, 422, "recordInfo is null")
        return envelope(state, 200, "success", record(task, now=state.now()))

    def callback_body(self, task: SandboxTask) -> dict[str, Any]:
        data = record(task, now=self.state.now())
        data["updateTime"] = task.complete_time
        data["creditsConsumed"] = task.credits_consumed
        if task.state == "success":
            data.pop("failCode")
            data.pop("failMsg")
            return {"code": 200, "msg": "Playground task completed successfully.", "data": data}
        data.pop("resultJson")
        data["creditsConsumed"] = 0
        return {"code": 501, "msg": "Playground task failed.", "data": data}
