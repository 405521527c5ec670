"""Runway Gen in the sandbox (kie-api.md §4.5): generate, extend, record-detail and the callback.

The record follows the get-ai-video-details example: `taskId`, `parentTaskId` ("" unless an extension),
`generateParam` {`prompt`, `imageUrl`, `expandPrompt`}, `state` `wait` → (`queueing`) → `generating` →
`success` | `fail`, `generateTime` "YYYY-MM-DD HH:mm:ss" (UTC), `videoInfo` {`videoId`, `taskId`,
`videoUrl`, `imageUrl` (a real cover JPEG)} (null until success), `failCode` (an integer) and `failMsg`
("" until a failure, as in the example with a successful task), and `expireFlag` 1 once the files passed
their retention. The callback is the documented snake_case body.

Unknowns and the choices made:
- duration 10 with quality 1080p answers `422` with the docs' own sentence; a text-only request (no
  `imageUrl`) without `aspectRatio` answers `422` likewise ("For text-only generation, aspect ratio must
  be explicitly specified"): both rules are documented, no error message is;
- a create without `callBackUrl` answers `422 "Please enter callBackUrl."`: the docs call the field
  required, and that is Kie's recorded answer where a callback is enforced (Suno, [REAL]);
- unknown ids (record-detail and the extend source) answer `422 "record is null"`, an unfinished or failed
  extend source `422 "record status is not success"`: the legacy APIs' documented 422 messages, as no
  Runway-specific ones are documented;
- `expandPrompt` is true, the only value the docs show;
- the failure callback sends 400 for a 4xx failure code, else 500 (the two documented failure codes), with
  `task_id` and the video fields empty, as the callback page says they are on failure.
"""

from __future__ import annotations

import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kie.protocol.task import as_float
from kie.sandbox.families.legacy import (
    LegacySandbox,
    admit,
    clock,
    companion_url,
    error_code,
    record_answer,
    start,
)
from kie.sandbox.http import envelope
from kie.sandbox.state import SandboxTask
from kie.sandbox.tasks import find_task, legacy_spec

GENERATE = "/api/v1/runway/generate"
EXTEND = "/api/v1/runway/extend"
RECORD_DETAIL = "/api/v1/runway/record-detail"
STATES = {
    "waiting": "wait",
    "queuing": "queueing",
    "generating": "generating",
    "success": "success",
    "fail": "fail",
}
SUCCESS_MSG = "All generated successfully."
NO_1080P_AT_10S = "If a 10-second video is selected, 1080p resolution cannot be selected"
NEEDS_RATIO = "For text-only generation, aspect ratio must be explicitly specified"
NEEDS_CALLBACK = "Please enter callBackUrl."


def generate_refusal(body: dict[str, Any]) -> str | None:
    """The documented rules the catalogue's per-field checks cannot express."""
    if not body.get("callBackUrl"):
        return NEEDS_CALLBACK
    if as_float(body.get("duration")) == 10 and body.get("quality") == "1080p":
        return NO_1080P_AT_10S
    if not body.get("imageUrl") and not body.get("aspectRatio"):
        return NEEDS_RATIO
    return None


class RunwaySandbox(LegacySandbox):
    api = "runway"

    def routes(self) -> list[Route]:
        return [
            Route(GENERATE, self.generate, methods=["POST"]),
            Route(EXTEND, self.extend, methods=["POST"]),
            Route(RECORD_DETAIL, self.record_detail, methods=["GET"]),
        ]

    # -- what a task shows --------------------------------------------------------------------------
    def video_id(self, task: SandboxTask) -> str:
        with self.state.lock:
            return str(task.extra.setdefault("videoId", str(uuid.uuid4())))

    def cover(self, task: SandboxTask) -> str | None:
        return companion_url(self.state, task, "cover", fmt="jpg", media="image")

    def expired(self, task: SandboxTask) -> bool:
        finished = [at for name, at in task.history if name == "success"]
        retention = self.state.config.scaled(self.state.config.retention)
        return bool(finished) and self.state.now() >= finished[-1] + retention

    def record(self, task: SandboxTask) -> dict[str, Any]:
        info = None
        if task.state == "success":
            info = {
                "videoId": self.video_id(task),
                "taskId": task.task_id,
                "videoUrl": task.result_urls[0],
                "imageUrl": self.cover(task),
            }
        code = error_code(task)
        return {
            "taskId": task.task_id,
            "parentTaskId": task.extra.get("parent", ""),
            "generateParam": {
                "prompt": task.input.get("prompt"),
                "imageUrl": task.input.get("imageUrl", ""),
                "expandPrompt": True,
            },
            "state": STATES.get(task.state, task.state),
            "generateTime": clock(task.create_time),
            "videoInfo": info,
            "failCode": "" if code is None else code,
            "failMsg": (task.fail_msg or "") if task.state == "fail" else "",
            "expireFlag": 1 if self.expired(task) else 0,
        }

    # -- routes -------------------------------------------------------------------------------------
    async def generate(self, request: Request) -> Response:
        admitted = await admit(self.state, request, "runway/generate")
        if isinstance(admitted, Response):
            return admitted
        key, body = admitted
        refusal = generate_refusal(body)
        if refusal is not None:
            return envelope(self.state, 422, refusal)
        spec = legacy_spec(self.api, GENERATE, body)
        assert spec is not None, f"the catalogue has no Runway model at {GENERATE}"
        return start(self.state, self.engine, request, key, spec, body)

    async def extend(self, request: Request) -> Response:
        admitted = await admit(self.state, request, "runway/extend")
        if isinstance(admitted, Response):
            return admitted
        key, body = admitted
        if not body.get("callBackUrl"):
            return envelope(self.state, 422, NEEDS_CALLBACK)
        source_id = body.get("taskId")
        source = find_task(self.state, source_id if isinstance(source_id, str) else None, self.api)
        if source is None:
            return envelope(self.state, 422, "record is null")
        if source.state != "success":
            return envelope(self.state, 422, "record status is not success")
        spec = legacy_spec(self.api, EXTEND, body)
        assert spec is not None, f"the catalogue has no Runway model at {EXTEND}"
        return start(self.state, self.engine, request, key, spec, body, parent=source.task_id)

    async def record_detail(self, request: Request) -> Response:
        return await record_answer(
            self.state, request, self.record, api=self.api, endpoint="runway/record-detail"
        )

    # -- callbacks ----------------------------------------------------------------------------------
    def callback_bodies(self, task: SandboxTask) -> list[dict[str, Any]]:
        if task.state == "success":
            data = {
                "task_id": task.task_id,
                "video_id": self.video_id(task),
                "video_url": task.result_urls[0],
                "image_url": self.cover(task),
            }
            return [{"code": 200, "msg": SUCCESS_MSG, "data": data}]
        code = 400 if (task.fail_code or "").startswith("4") else 500
        data = {"task_id": task.task_id, "video_id": "", "video_url": "", "image_url": ""}
        return [{"code": code, "msg": task.fail_msg or "Generation failed", "data": data}]
