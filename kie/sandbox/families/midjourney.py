"""Midjourney in the sandbox (kie-api.md §4.3): generate, upscale, vary, record-info and the callback.

The record follows the record-info schema: `taskType`, `paramJson` (the request as a JSON string),
`resultInfoJson.resultUrls[{resultUrl}]` (null until success), `successFlag` 0 while waiting or
generating, 1 on success and 3 ("generation failed") when a generation fails (2, "task creation
failed", would need a create that is accepted and then rejected, which the sandbox never does),
`errorCode`/`errorMessage` null until a failure, and times as ISO strings, the schema's type.

Unknowns and the choices made:
- no record-info answer for an unknown id is documented; the sandbox answers `422 "record is null"`,
  the message the sibling legacy APIs (Veo, 4o) document;
- upscale and vary on an unknown task answer `422 "record is null"`, on an unfinished or failed one
  `422 "record status is not success"`, and on a task that is not a 4-image grid (a video, an upscale)
  `422 "record result error"`: all three are documented 422 messages of the legacy APIs (§8.1);
- `imageIndex` is checked against the catalogue's range (0-3 for upscale; 0-4 for vary, whose docs
  disagree between 0-3 and 1-4);
- upscale and vary records say `taskType` `mj_upscale` / `mj_vary`, the names of their price keys;
- a body without `taskType` is read as `mj_txt2img`, the schema's default;
- the failure callback's `msg` is the failure reason (the docs' example says "Image generation failed").
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kie import catalog
from kie.sandbox.families.legacy import (
    LegacySandbox,
    admit,
    error_code,
    iso_time,
    param_json,
    record_answer,
    start,
)
from kie.sandbox.http import envelope
from kie.sandbox.state import SandboxTask
from kie.sandbox.tasks import find_task, legacy_spec

GENERATE = "/api/v1/mj/generate"
# path -> (endpoint name for counters and faults, the record's taskType)
FOLLOW_UPS = {
    "/api/v1/mj/generateUpscale": ("mj/generateUpscale", "mj_upscale"),
    "/api/v1/mj/generateVary": ("mj/generateVary", "mj_vary"),
}
RECORD_INFO = "/api/v1/mj/record-info"
GRID_SIZE = 4


def flag(task: SandboxTask) -> int:
    return {"success": 1, "fail": 3}.get(task.state, 0)


def record(task: SandboxTask) -> dict[str, Any]:
    success = task.state == "success"
    failed = task.state == "fail"
    return {
        "taskId": task.task_id,
        "taskType": task.extra.get("taskType"),
        "paramJson": param_json(task, sort_keys=True),
        "completeTime": iso_time(task.complete_time) if task.terminal else None,
        "resultInfoJson": (
            {"resultUrls": [{"resultUrl": url} for url in task.result_urls]} if success else None
        ),
        "successFlag": flag(task),
        "createTime": iso_time(task.create_time),
        "errorCode": error_code(task),
        "errorMessage": task.fail_msg if failed else None,
    }


def is_grid(task: SandboxTask) -> bool:
    """Upscale and vary pick one image of a finished 4-image grid."""
    return catalog.get(task.model).media == "image" and len(task.result_urls) >= GRID_SIZE


class MidjourneySandbox(LegacySandbox):
    api = "midjourney"

    def routes(self) -> list[Route]:
        return [
            Route(GENERATE, self.generate, methods=["POST"]),
            *(Route(path, self.follow_up, methods=["POST"]) for path in FOLLOW_UPS),
            Route(RECORD_INFO, self.record_info, methods=["GET"]),
        ]

    async def generate(self, request: Request) -> Response:
        admitted = await admit(self.state, request, "mj/generate")
        if isinstance(admitted, Response):
            return admitted
        key, body = admitted
        spec = legacy_spec(self.api, GENERATE, body, {"taskType": "mj_txt2img"})
        if spec is None:
            return envelope(self.state, 422, f"taskType {body.get('taskType')!r} is not supported")
        task_type = spec.endpoint.fixed["taskType"]
        return start(self.state, self.engine, request, key, spec, body, taskType=task_type)

    async def follow_up(self, request: Request) -> Response:
        path = request.url.path
        endpoint, task_type = FOLLOW_UPS[path]
        admitted = await admit(self.state, request, endpoint)
        if isinstance(admitted, Response):
            return admitted
        key, body = admitted
        spec = legacy_spec(self.api, path, body)
        assert spec is not None, f"the catalogue has no Midjourney model at {path}"
        parent = find_task(self.state, body.get("taskId"), self.api)
        refusal = self.refuse(parent)
        if refusal is not None:
            return envelope(self.state, 422, refusal)
        assert parent is not None
        return start(
            self.state, self.engine, request, key, spec, body, taskType=task_type, parent=parent.task_id
        )

    @staticmethod
    def refuse(parent: SandboxTask | None) -> str | None:
        if parent is None:
            return "record is null"
        if parent.state != "success":
            return "record status is not success"
        if not is_grid(parent):
            return "record result error"
        return None

    async def record_info(self, request: Request) -> Response:
        return await record_answer(self.state, request, record, api=self.api, endpoint="mj/record-info")

    def callback_bodies(self, task: SandboxTask) -> list[dict[str, Any]]:
        data = {"taskId": task.task_id, "promptJson": param_json(task, sort_keys=True), "resultUrls": []}
        if task.state == "success":
            return [{"code": 200, "msg": "success", "data": {**data, "resultUrls": list(task.result_urls)}}]
        return [{"code": 500, "msg": task.fail_msg or "Image generation failed", "data": data}]
