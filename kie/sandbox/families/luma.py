"""Luma Modify in the sandbox (kie-api.md §4.7): `modify/generate`, `modify/record-info`, the callback.

The record follows the get-luma-modify-details schema: `paramJson`, `response` {`taskId`, `originUrls`
(the source video), `resultUrls`} once finished, `successFlag`, `errorCode`/`errorMessage`, and times
as millisecond integers (the schema's int64, with a captured-looking example).

`successFlag` is 0 while waiting or generating, 1 on success, 3 when the generation fails, and 4 once a
succeeded task's callback could not be delivered: every attempt of the retry schedule failed, or the URL
could not be called at all. A 4 keeps its result URLs, as the docs' own client code reads them.

Unknowns: no answer for an unknown id is documented; the sandbox sends `422 "record is null"`, as the
sibling legacy APIs document. The failure callback is the docs' example: code 500,
"Modify record generation failed.", and no `resultUrls`.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kie.sandbox.families.legacy import (
    LegacySandbox,
    admit,
    callbacks_exhausted,
    error_code,
    param_json,
    record_answer,
    start,
)
from kie.sandbox.state import SandboxTask
from kie.sandbox.tasks import legacy_spec

GENERATE = "/api/v1/modify/generate"
RECORD_INFO = "/api/v1/modify/record-info"
CALLBACK_FAILED = "Callback delivery failed; the video was generated."


class LumaSandbox(LegacySandbox):
    api = "luma"

    def routes(self) -> list[Route]:
        return [
            Route(GENERATE, self.generate, methods=["POST"]),
            Route(RECORD_INFO, self.record_info, methods=["GET"]),
        ]

    def flag(self, task: SandboxTask) -> int:
        if task.state == "success":
            return 4 if callbacks_exhausted(self.state, task) else 1
        return 3 if task.state == "fail" else 0

    @staticmethod
    def error_message(task: SandboxTask, flag: int) -> str | None:
        if task.state == "fail":
            return task.fail_msg
        return CALLBACK_FAILED if flag == 4 else None

    def record(self, task: SandboxTask) -> dict[str, Any]:
        flag = self.flag(task)
        response = None
        if task.state == "success":
            response = {
                "taskId": task.task_id,
                "originUrls": [task.input["videoUrl"]] if task.input.get("videoUrl") else [],
                "resultUrls": list(task.result_urls),
            }
        return {
            "taskId": task.task_id,
            "paramJson": param_json(task, sort_keys=True),
            "completeTime": task.complete_time if task.terminal else None,
            "response": response,
            "successFlag": flag,
            "createTime": task.create_time,
            "errorCode": error_code(task),
            "errorMessage": self.error_message(task, flag),
        }

    async def generate(self, request: Request) -> Response:
        admitted = await admit(self.state, request, "modify/generate")
        if isinstance(admitted, Response):
            return admitted
        key, body = admitted
        spec = legacy_spec(self.api, GENERATE, body)
        assert spec is not None, "the catalogue has no Luma model at /api/v1/modify/generate"
        return start(self.state, self.engine, request, key, spec, body)

    async def record_info(self, request: Request) -> Response:
        return await record_answer(
            self.state, request, self.record, api=self.api, endpoint="modify/record-info"
        )

    def callback_bodies(self, task: SandboxTask) -> list[dict[str, Any]]:
        data: dict[str, Any] = {"taskId": task.task_id, "promptJson": param_json(task, sort_keys=True)}
        if task.state == "success":
            data["resultUrls"] = list(task.result_urls)
            return [{"code": 200, "msg": "Modify record generated successfully.", "data": data}]
        return [{"code": 500, "msg": "Modify record generation failed.", "data": data}]
