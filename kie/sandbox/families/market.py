"""The Market API in the sandbox: createTask, recordInfo, the playground alias, and its callbacks.

Shapes are the recorded real ones (kie-api.md §3): `param` is a JSON string with a double-encoded
`input` holding exactly the keys the client sent; `resultJson` is `""` until success; `failCode` and
`failMsg` stay null until failure; `costTime` is seconds; no `updateTime` in recordInfo; `progress`
appears only for Sora 2 models.

Every catalogue model on createTask is served, including the product APIs' createTask forms. Suno's
forms (`ai-music-api/*`) answer as the 2026-10 docs describe: songs under `data`, lyrics under
`resultObject.lyricsData`.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kie import catalog
from kie.errors import KieError
from kie.sandbox.engine import Engine
from kie.sandbox.families.legacy import admit, record_answer
from kie.sandbox.http import envelope
from kie.sandbox.state import SandboxState, SandboxTask
from kie.sandbox.tasks import launch


def param_string(task: SandboxTask) -> str:
    param: dict[str, Any] = {"input": json.dumps(task.input, separators=(",", ":")), "model": task.model}
    if task.callback_url:
        param["callBackUrl"] = task.callback_url
    return json.dumps(param, separators=(",", ":"))


MUSIC_PREFIX = "ai-music-api/"


def result_object(task: SandboxTask) -> dict[str, Any]:
    """What `resultJson` holds on success: `resultUrls`, or Suno's createTask shapes."""
    if not task.model.startswith(MUSIC_PREFIX):
        return {"resultUrls": task.result_urls}
    if task.model == f"{MUSIC_PREFIX}generate-lyrics":
        from kie.sandbox.families.suno import lyric_text

        prompt = str(task.input.get("prompt") or "")
        items = []
        for index in range(max(1, len(task.result_urls))):
            title, text = lyric_text(prompt, index)
            items.append({"text": text, "title": title, "status": "complete", "error_message": ""})
        return {"resultObject": {"lyricsData": items}}
    if task.result_urls and all(url.endswith((".mp3", ".wav")) for url in task.result_urls):
        title = str(task.input.get("title") or "Untitled")
        songs = [
            {"id": f"{task.task_id[:24]}{index:08d}", "audio_url": url, "title": title, "duration": 30.0}
            for index, url in enumerate(task.result_urls)
        ]
        return {"data": songs}
    return {"resultUrls": task.result_urls}


def record(task: SandboxTask) -> dict[str, Any]:
    data: dict[str, Any] = {
        "taskId": task.task_id,
        "model": task.model,
        "state": task.state,
        "param": param_string(task),
        "resultJson": json.dumps(result_object(task)) if task.state == "success" else "",
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
        checked = await admit(state, request, "createTask")
        if isinstance(checked, Response):
            return checked
        admitted, body = checked
        model_id = body.get("model")
        if not isinstance(model_id, str):
            return envelope(state, 422, "model is required")
        try:
            spec = catalog.get(model_id)
        except KieError:
            return envelope(state, 422, f"The model {model_id} is not supported")
        if spec.id != model_id or spec.endpoint.api != "market":
            return envelope(state, 422, f"The model {model_id} is not supported")
        values = body.get("input") or {}
        if not isinstance(values, dict):
            return envelope(state, 422, "input must be an object")
        task = launch(
            state,
            self.engine,
            request,
            admitted,
            spec=spec,
            body=body,
            values=values,
            callback_url=body.get("callBackUrl"),
        )
        if not isinstance(task, SandboxTask):
            return task
        return envelope(state, 200, "success", {"taskId": task.task_id, "recordId": task.task_id})

    async def record_info(self, request: Request) -> Response:
        return await record_answer(
            self.state,
            request,
            record,
            api=self.api,
            endpoint="recordInfo",
            missing=(422, "recordInfo is null"),
        )

    def callback_bodies(self, task: SandboxTask) -> list[dict[str, Any]]:
        return [self.callback_body(task)]

    def callback_body(self, task: SandboxTask) -> dict[str, Any]:
        data = record(task)
        data["updateTime"] = task.complete_time
        data["creditsConsumed"] = task.credits_consumed
        if task.state == "success":
            data.pop("failCode")
            data.pop("failMsg")
            return {"code": 200, "msg": "Playground task completed successfully.", "data": data}
        data.pop("resultJson")
        data["creditsConsumed"] = 0
        return {"code": 501, "msg": "Playground task failed.", "data": data}
