"""The 4o Image API in the sandbox: generate, record-info, download-url, and its callbacks (kie-api.md
§4.1, §5).

Choices where the docs disagree or say nothing:
- `createTime`/`completeTime` are epoch ms: the OpenAPI says so and the one example that looks
  captured (CN quickstart, `createTime 1755572609000`) agrees; the quickstart's "YYYY-MM-DD HH:mm:ss"
  is only parsed, never sent.
- results are under `response.resultUrls` (OpenAPI, most clients); `response` is null until success.
- `progress` is the string "0.00"…"1.00", advancing with generation time; `status` is GENERATING
  whenever `successFlag` is 0, and a failure is GENERATE_FAILED with `successFlag` 2 (requests that
  cannot become tasks are refused at create, so CREATE_TASK_FAILED never arises here).
- `errorCode` is null except on failure (the CN example; the EN example's 400 on a success is noise).
- the success callback says "success" (English callback page; the CN page says "Gpt4o-image generated
  successfully."); a failure callback has `info: null` and code 400, 451 or 500.
- a create with neither `prompt` nor `filesUrl`/`fileUrl` is refused with 422: the docs make `prompt`
  required exactly then. The wording is the sandbox's own.
- download-url answers a `/dl/` link tagged `X-Amz-Expires=1200` like the documented R2 link; a URL that
  is not one of the task's results gets "url is wrong" (the real wording of `common/download-url`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kie.catalog.spec import ModelSpec
from kie.sandbox.families.legacy import (
    LegacySandbox,
    create_flat,
    documented_code,
    documented_message,
    generation_progress,
    known_task,
    param_json,
    record_answer,
)
from kie.sandbox.http import authorise, envelope, public_url, request_fault
from kie.sandbox.state import SandboxState, SandboxTask
from kie.sandbox.tasks import client_port, json_body

API = "gpt4o-image"
PREFIX = "/api/v1/gpt4o-image"
CALLBACK_CODES = (400, 451, 500)
GENERIC_FAILURE = 500
DEFAULT_MESSAGES = {
    400: "Your content was flagged by OpenAI as violating content policies",
    451: "Failed to download the image from filesUrl",
    500: "Internal Error, Please try again later",
}


def needs_prompt(spec: ModelSpec, values: Mapping[str, Any]) -> str | None:
    if values.get("prompt") or values.get("filesUrl") or values.get("fileUrl"):
        return None
    return "prompt is required when neither filesUrl nor fileUrl is given"


def unsupported(body: Mapping[str, Any]) -> str:
    return "The 4o Image API does not accept this request"


def record(state: SandboxState, task: SandboxTask) -> dict[str, Any]:
    failed = task.state == "fail"
    code = documented_code(task, CALLBACK_CODES, GENERIC_FAILURE) if failed else None
    return {
        "taskId": task.task_id,
        "paramJson": param_json(task),
        "completeTime": task.complete_time if task.terminal else None,
        "response": {"resultUrls": list(task.result_urls)} if task.state == "success" else None,
        "successFlag": 1 if task.state == "success" else (2 if failed else 0),
        "status": "SUCCESS" if task.state == "success" else ("GENERATE_FAILED" if failed else "GENERATING"),
        "errorCode": code,
        "errorMessage": documented_message(task, DEFAULT_MESSAGES, code) if code is not None else "",
        "createTime": task.create_time,
        "progress": f"{generation_progress(state, task):.2f}",
    }


class Gpt4oImageSandbox(LegacySandbox):
    api = API

    def routes(self) -> list[Route]:
        return [
            Route(f"{PREFIX}/generate", self.create, methods=["POST"]),
            Route(f"{PREFIX}/record-info", self.record_info, methods=["GET"]),
            Route(f"{PREFIX}/download-url", self.download_url, methods=["POST"]),
        ]

    async def create(self, request: Request) -> Response:
        return await create_flat(
            self.state,
            self.engine,
            request,
            api=API,
            endpoint="gpt4o-image/generate",
            unsupported=unsupported,
            check=needs_prompt,
        )

    async def record_info(self, request: Request) -> Response:
        return await record_answer(
            self.state,
            request,
            lambda task: record(self.state, task),
            api=API,
            endpoint="gpt4o-image/record-info",
            retention=True,
        )

    async def download_url(self, request: Request) -> Response:
        state = self.state
        key_id, denied = authorise(request, state)
        state.count("gpt4o-image/download-url", key_id or "anonymous", client=client_port(request))
        if denied is not None:
            return denied
        _, answer = await request_fault(state, "gpt4o-image/download-url")
        if answer is not None:
            return answer
        body = await json_body(request) or {}
        task_id, url = body.get("taskId"), body.get("url")
        if not isinstance(task_id, str) or not task_id or not isinstance(url, str) or not url:
            return envelope(state, 422, "taskId and url are required")
        found = known_task(state, task_id, API, retention=True)
        if not isinstance(found, SandboxTask):
            return found
        return self.link_answer(request, found, url)

    def link_answer(self, request: Request, task: SandboxTask, url: str) -> Response:
        state = self.state
        if task.state != "success":
            return envelope(state, 422, "record status is not success")
        if not task.result_urls:
            return envelope(state, 422, "record result data is blank")
        if url not in task.result_urls:
            return envelope(state, 422, "url is wrong")
        path = url.partition("/files/")[2]
        if state.file(path, via_link=True) is None:
            return envelope(state, 422, "Temporarily supports records within 14 days")
        base = public_url(request, state.config.public_url)
        expires = int(state.config.download_link_ttl)
        return envelope(state, 200, "success", f"{base}/dl/{state.new_link(path)}?X-Amz-Expires={expires}")

    def callback_bodies(self, task: SandboxTask) -> list[dict[str, Any]]:
        if task.state == "success":
            info = {"result_urls": list(task.result_urls)}
            return [{"code": 200, "msg": "success", "data": {"taskId": task.task_id, "info": info}}]
        code = documented_code(task, CALLBACK_CODES, GENERIC_FAILURE)
        msg = documented_message(task, DEFAULT_MESSAGES, code)
        return [{"code": code, "msg": msg, "data": {"taskId": task.task_id, "info": None}}]
