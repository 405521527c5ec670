"""Runway Aleph in the sandbox (kie-api.md §4.6): `aleph/generate`, `aleph/record-info`, the callback.

The record follows the get-aleph-video-details page: `paramJson`, `response` {`taskId`,
`resultVideoUrl`, `resultImageUrl`} (null until success), `successFlag` 1 on success and 0 otherwise,
`errorCode` 0 and `errorMessage` "" unless the task failed, and times as ISO strings like its example.
A failed task is the page's third case: flag 0 with an error message (and its code in `errorCode`).

`resultImageUrl` is a real thumbnail: a JPEG registered next to the video on first use, with the same
lifetime, so links in the sandbox never point at nothing.

The callback is the documented one with `taskId` at the top level: on success `data` holds
`result_video_url`/`result_image_url`; on failure code 400 (the only failure code its page lists), the
reason as `msg`, and `data: null`. An unknown id answers `404 "Task not found"`, the record-info page's
own wording for that case.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kie.sandbox.families.legacy import (
    LegacySandbox,
    admit,
    error_code,
    iso_time,
    param_json,
    record_answer,
    start,
)
from kie.sandbox.state import SandboxTask
from kie.sandbox.tasks import legacy_spec

GENERATE = "/api/v1/aleph/generate"
RECORD_INFO = "/api/v1/aleph/record-info"
COVER_FORMAT = "jpg"


class AlephSandbox(LegacySandbox):
    api = "aleph"

    def routes(self) -> list[Route]:
        return [
            Route(GENERATE, self.generate, methods=["POST"]),
            Route(RECORD_INFO, self.record_info, methods=["GET"]),
        ]

    def cover_url(self, task: SandboxTask) -> str | None:
        """The thumbnail of a succeeded task, registered beside its video the first time it is asked for."""
        if task.state != "success" or not task.result_urls:
            return None
        if "cover_url" in task.extra:
            return str(task.extra["cover_url"])
        video_url = task.result_urls[0]
        base, _, video_path = video_url.partition("/files/")
        with self.state.lock:
            video = self.state.files.get(video_path)
        if video is None or video.recipe is None:
            return None
        path = f"r/{task.task_id}/cover.{COVER_FORMAT}"
        model, _, _, values, _ = video.recipe
        self.state.store(path, replace(video, data=None, recipe=(model, "image", COVER_FORMAT, values, 0)))
        task.extra["cover_url"] = f"{base}/files/{path}"
        return str(task.extra["cover_url"])

    def record(self, task: SandboxTask) -> dict[str, Any]:
        failed = task.state == "fail"
        response = None
        if task.state == "success":
            response = {
                "taskId": task.task_id,
                "resultVideoUrl": task.result_urls[0] if task.result_urls else None,
                "resultImageUrl": self.cover_url(task),
            }
        return {
            "taskId": task.task_id,
            "paramJson": param_json(task, sort_keys=True),
            "response": response,
            "completeTime": iso_time(task.complete_time) if task.terminal else None,
            "createTime": iso_time(task.create_time),
            "successFlag": 1 if task.state == "success" else 0,
            "errorCode": error_code(task) if failed else 0,
            "errorMessage": (task.fail_msg or "Generation failed") if failed else "",
        }

    async def generate(self, request: Request) -> Response:
        admitted = await admit(self.state, request, "aleph/generate")
        if isinstance(admitted, Response):
            return admitted
        key, body = admitted
        spec = legacy_spec(self.api, GENERATE, body)
        assert spec is not None, "the catalogue has no Aleph model at /api/v1/aleph/generate"
        return start(self.state, self.engine, request, key, spec, body)

    async def record_info(self, request: Request) -> Response:
        return await record_answer(
            self.state,
            request,
            self.record,
            api=self.api,
            endpoint="aleph/record-info",
            missing=(404, "Task not found"),
        )

    def callback_bodies(self, task: SandboxTask) -> list[dict[str, Any]]:
        if task.state == "success":
            data = {"result_video_url": task.result_urls[0], "result_image_url": self.cover_url(task)}
            return [{"code": 200, "msg": "success", "data": data, "taskId": task.task_id}]
        msg = task.fail_msg or "Generation failed"
        return [{"code": 400, "msg": msg, "data": None, "taskId": task.task_id}]
