"""Veo 3.1 in the sandbox (kie-api.md §4.4): generate, extend, 4K, 1080p, record-info and the callbacks.

The record follows the record-info schema and example: `paramJson` (the body as sent), `response`
(null until success, then `taskId`, `resultUrls`, `originUrls` (only when the ratio is not 16:9, else
null), `resolution`; plus `fullResultUrls` for an extension and `imageUrls` for a 4K task), `successFlag`
0 while waiting or generating, 1 on success, and on failure 2 ("failed") for a 4xx failure code and 3
("generation failed") otherwise, `errorCode` (an integer) null and `errorMessage` "" until a failure, as in
the docs' example, times as "YYYY-MM-DD HH:mm:ss" (the example's format; the schema's ISO and one client's
ms integers are parsed by the client but not sent), and `fallbackFlag: false` on generation records only
(the details page: extension and 4K records lack it).

Unknowns and the choices made:
- a body without `model` is a veo3_fast request (the documented default);
- unknown task ids, here and for every follow-up, answer `422 "record is null"`; an unfinished or failed
  source answers `422 "record status is not success"`, an index with no video `422 "record result data not
  exist"`: all documented 422 messages of these endpoints;
- the 1080p GET answers `422 "record result data is blank"` (a documented 422 message) until the upgrade
  is ready, for as long as the model's typical time, then `{"resultUrl": ...}`; it is charged once, when
  the file first exists, and marks the source as upgraded, after which extend answers 422 "Videos
  generated after 1080P generation cannot be extended";
- 4K gets a new task id (its record has `resolution: "4K"` and a thumbnail in `imageUrls`); repeating the
  POST for the same video answers the two documented 422s with the running or finished 4K task, and a
  failed 4K may be requested again;
- the 4K failure callback keeps `data.taskId` (with `info: null`) although its page says `data` is null on
  failure: the webhook signature is computed over `data.taskId`, which a null `data` could not carry;
- generation and extension failure callbacks send the task's failure code when the docs list it for this
  callback (400, 422, 500, 501), else 501 ("generation failed").
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kie import catalog
from kie.catalog.spec import ModelSpec
from kie.protocol.task import as_int
from kie.sandbox.families.legacy import (
    LegacySandbox,
    admit,
    clock,
    companion_url,
    error_code,
    param_json,
    record_answer,
    start,
    status_gate,
)
from kie.sandbox.http import envelope
from kie.sandbox.state import SandboxTask
from kie.sandbox.tasks import find_task, legacy_spec

GENERATE = "/api/v1/veo/generate"
EXTEND = "/api/v1/veo/extend"
GET_4K = "/api/v1/veo/get-4k-video"
GET_1080P = "/api/v1/veo/get-1080p-video"
RECORD_INFO = "/api/v1/veo/record-info"
DEFAULTS = {"model": "veo3_fast"}
FOUR_K = "veo3/4k"
EXTENSION = "veo3/extend"
UPGRADE = "veo3/1080p"

SUCCESS_MSG = "Veo3.1 video generated successfully."
FOUR_K_SUCCESS_MSG = "4K Video generated successfully."
FOUR_K_PROCESSING = "4k is processing. It should be ready in 5-10 minutes. Please check back shortly."
FOUR_K_DONE = "The video has been generated successfully"
NOT_EXTENDABLE = "Videos generated after 1080P generation cannot be extended"
NOT_READY = "record result data is blank"
CALLBACK_FAILURE_CODES = {400, 422, 500, 501}


def flag(task: SandboxTask) -> int:
    if task.state == "success":
        return 1
    if task.state == "fail":
        return 2 if (task.fail_code or "").startswith("4") else 3
    return 0


def four_k_answer(task_id: str) -> dict[str, Any]:
    """The 4K create answer: the new task id, its URLs still empty."""
    return {"taskId": task_id, "resultUrls": None, "imageUrls": None}


def aspect(task: SandboxTask) -> str:
    return str(task.input.get("aspect_ratio") or task.input.get("aspectRatio") or "16:9")


class VeoSandbox(LegacySandbox):
    api = "veo"

    def routes(self) -> list[Route]:
        return [
            Route(GENERATE, self.generate, methods=["POST"]),
            Route(EXTEND, self.extend, methods=["POST"]),
            Route(GET_4K, self.four_k, methods=["POST"]),
            Route(GET_1080P, self.upgrade_1080p, methods=["GET"]),
            Route(RECORD_INFO, self.record_info, methods=["GET"]),
        ]

    # -- what a task shows --------------------------------------------------------------------------
    def response(self, task: SandboxTask) -> dict[str, Any]:
        data: dict[str, Any] = {"taskId": task.task_id, "resultUrls": list(task.result_urls)}
        if task.model == FOUR_K:
            data["imageUrls"] = [companion_url(self.state, task, "thumbnail", fmt="jpg", media="image")]
            data["resolution"] = "4K"
            return data
        origin = None
        if aspect(task) != "16:9":
            origin = [companion_url(self.state, task, "origin", fmt="mp4", media="video")]
        data["originUrls"] = origin
        data["resolution"] = str(task.input.get("resolution") or "720p")
        if task.model == EXTENSION:
            data["fullResultUrls"] = [companion_url(self.state, task, "full", fmt="mp4", media="video")]
        return data

    def record(self, task: SandboxTask) -> dict[str, Any]:
        failed = task.state == "fail"
        data: dict[str, Any] = {
            "taskId": task.task_id,
            "paramJson": param_json(task, sort_keys=True),
            "completeTime": clock(task.complete_time) if task.terminal else None,
            "response": self.response(task) if task.state == "success" else None,
            "successFlag": flag(task),
            "errorCode": error_code(task),
            "errorMessage": (task.fail_msg or "") if failed else "",
            "createTime": clock(task.create_time),
        }
        if task.model not in (FOUR_K, EXTENSION):
            data["fallbackFlag"] = False
        return data

    # -- routes -------------------------------------------------------------------------------------
    async def generate(self, request: Request) -> Response:
        admitted = await admit(self.state, request, "veo/generate")
        if isinstance(admitted, Response):
            return admitted
        key, body = admitted
        spec = legacy_spec(self.api, GENERATE, body, DEFAULTS)
        if spec is None:
            return envelope(self.state, 422, f"model {body.get('model')!r} is not supported")
        return start(self.state, self.engine, request, key, spec, body)

    def source(self, task_id: Any, index: int = 0) -> SandboxTask | str:
        """The finished Veo task a follow-up names, or the documented 422 message refusing it."""
        task = find_task(self.state, task_id if isinstance(task_id, str) else None, self.api)
        if task is None:
            return "record is null"
        if task.state != "success":
            return "record status is not success"
        if not 0 <= index < len(task.result_urls):
            return "record result data not exist"
        return task

    async def extend(self, request: Request) -> Response:
        admitted = await admit(self.state, request, "veo/extend")
        if isinstance(admitted, Response):
            return admitted
        key, body = admitted
        spec = self.spec(EXTEND, body)
        source = self.source(body.get("taskId"))
        if isinstance(source, str):
            return envelope(self.state, 422, source)
        if source.extra.get("upgraded_1080p"):
            return envelope(self.state, 422, NOT_EXTENDABLE)
        return start(self.state, self.engine, request, key, spec, body, parent=source.task_id)

    def spec(self, path: str, body: dict[str, Any]) -> ModelSpec:
        spec = legacy_spec(self.api, path, body)
        assert spec is not None, f"the catalogue has no Veo model at {path}"
        return spec

    async def four_k(self, request: Request) -> Response:
        admitted = await admit(self.state, request, "veo/get-4k-video")
        if isinstance(admitted, Response):
            return admitted
        key, body = admitted
        index = as_int(body.get("index")) or 0
        source = self.source(body.get("taskId"), index)
        if isinstance(source, str):
            return envelope(self.state, 422, source)
        earlier = self.four_k_of(source, index)
        if earlier is not None:
            return self.repeat_answer(earlier)
        spec = self.spec(GET_4K, body)
        return start(self.state, self.engine, request, key, spec, body, answer=four_k_answer)

    def four_k_of(self, source: SandboxTask, index: int) -> SandboxTask | None:
        """The running or finished 4K task of a source video; a failed one does not block a new request."""
        with self.state.lock:
            tasks = list(self.state.tasks.values())
        for task in tasks:
            if (
                task.model == FOUR_K
                and task.input.get("taskId") == source.task_id
                and (as_int(task.input.get("index")) or 0) == index
                and task.state != "fail"
            ):
                return task
        return None

    def repeat_answer(self, task: SandboxTask) -> Response:
        if task.state != "success":
            return envelope(self.state, 422, FOUR_K_PROCESSING, four_k_answer(task.task_id))
        response = self.response(task)
        data = {
            "taskId": task.task_id,
            "resultUrls": response["resultUrls"],
            "imageUrls": response["imageUrls"],
        }
        return envelope(self.state, 422, FOUR_K_DONE, data)

    async def upgrade_1080p(self, request: Request) -> Response:
        task_id = await status_gate(self.state, request, "veo/get-1080p-video")
        if isinstance(task_id, Response):
            return task_id
        raw_index = request.query_params.get("index") or "0"
        if not raw_index.isdigit():
            return envelope(self.state, 400, "index must be a non-negative integer")
        index = int(raw_index)
        source = self.source(task_id, index)
        if isinstance(source, str):
            return envelope(self.state, 422, source)
        spec = catalog.get(UPGRADE)
        price = catalog.estimate(spec, {}, overrides={}).credits_each or 0.0
        with self.state.lock:
            jobs: dict[int, dict[str, Any]] = source.extra.setdefault("1080p", {})
            job = jobs.get(index)
            if job is None:
                if self.state.available() < price:
                    return envelope(self.state, 402, "Credits insufficient. Please top up and try again.")
                ready_at = self.state.now() + sum(self.state.plan_duration(spec.traits.typical_seconds))
                jobs[index] = {"ready_at": ready_at}
                return envelope(self.state, 422, NOT_READY)
            if self.state.now() < job["ready_at"]:
                return envelope(self.state, 422, NOT_READY)
            if "url" not in job:
                job["url"] = companion_url(
                    self.state,
                    source,
                    f"1080p-{index}",
                    fmt="mp4",
                    media="video",
                    values={"resolution": "1080p"},
                )
                self.state.settle(source, price)  # the source's own hold was released when it finished
                source.extra["upgraded_1080p"] = True
            return envelope(self.state, 200, "success", {"resultUrl": job["url"]})

    async def record_info(self, request: Request) -> Response:
        return await record_answer(self.state, request, self.record, api=self.api, endpoint="veo/record-info")

    # -- callbacks ----------------------------------------------------------------------------------
    def callback_bodies(self, task: SandboxTask) -> list[dict[str, Any]]:
        if task.model == FOUR_K:
            return [self.four_k_callback(task)]
        if task.state == "success":
            response = self.response(task)
            info = {key: response[key] for key in ("resultUrls", "originUrls", "resolution")}
            data = {"taskId": task.task_id, "info": info, "fallbackFlag": False}
            return [{"code": 200, "msg": SUCCESS_MSG, "data": data}]
        code = as_int(task.fail_code)
        code = code if code in CALLBACK_FAILURE_CODES else 501
        data = {"taskId": task.task_id, "fallbackFlag": False}
        return [{"code": code, "msg": task.fail_msg or "Generation failed", "data": data}]

    def four_k_callback(self, task: SandboxTask) -> dict[str, Any]:
        if task.state == "success":
            response = self.response(task)
            info = {"resultUrls": response["resultUrls"], "imageUrls": response["imageUrls"]}
            return {"code": 200, "msg": FOUR_K_SUCCESS_MSG, "data": {"taskId": task.task_id, "info": info}}
        msg = task.fail_msg or "The 4K version of this video is unavailable. Please try a different video."
        return {"code": 500, "msg": msg, "data": {"taskId": task.task_id, "info": None}}
