"""The Flux Kontext API in the sandbox: generate/edit, record-info, and its callbacks (kie-api.md §4.2,
§5).

Choices where the docs disagree or say nothing:
- the body's `model` picks the catalogue model (`flux-kontext-pro` when absent, the documented default);
  any other value is refused with 422.
- editing (`inputImage` given) accepts `safetyTolerance` 0-2 only, as documented; more is a 422.
- `createTime`/`completeTime` are ISO 8601 UTC strings (`2024-03-20T10:25:00Z`): the Flux record-info
  examples are the only evidence of this family's format.
- `response` is null until success, then `{originImageUrl, resultImageUrl}`. `originImageUrl` is a
  second link to the same image that stops working 10 minutes (scaled) after completion, as documented
  for the upstream copy; `resultImageUrl` lives as long as any result.
- a failure is `successFlag` 3 (GENERATE_FAILED) with `errorCode`/`errorMessage`; create-time problems
  are refused at create, so 2 (CREATE_TASK_FAILED) never arises here.
- callbacks use code 400, 500 or 501 on failure and then carry no `info` ("only present on success").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kie.catalog.spec import ModelSpec
from kie.protocol.task import as_int
from kie.sandbox.families.legacy import (
    LegacySandbox,
    create_flat,
    documented_code,
    documented_message,
    finished_at,
    iso_time,
    param_json,
    record_answer,
)
from kie.sandbox.state import SandboxTask, StoredFile

API = "flux-kontext"
PREFIX = "/api/v1/flux/kontext"
DEFAULT_MODEL = "flux-kontext-pro"
SUCCESS_MSG = "BFL image generated successfully."
CALLBACK_CODES = (400, 500, 501)
GENERIC_FAILURE = 501
ORIGIN_TTL = 600.0
DEFAULT_MESSAGES = {
    400: "Your prompt was flagged by Website as violating content policies",
    500: "Internal Error, Please try again later",
    501: "Image generation task failed",
}


def editing_tolerance(spec: ModelSpec, values: Mapping[str, Any]) -> str | None:
    if not values.get("inputImage") or values.get("safetyTolerance") is None:
        return None
    tolerance = as_int(values.get("safetyTolerance"))
    if tolerance is not None and 0 <= tolerance <= 2:
        return None
    return "safetyTolerance must be 0, 1 or 2 when editing an image (inputImage)"


def unsupported(body: Mapping[str, Any]) -> str:
    return f"model must be flux-kontext-pro or flux-kontext-max, not {body.get('model')!r}"


class FluxKontextSandbox(LegacySandbox):
    api = API

    def routes(self) -> list[Route]:
        return [
            Route(f"{PREFIX}/generate", self.create, methods=["POST"]),
            Route(f"{PREFIX}/record-info", self.record_info, methods=["GET"]),
        ]

    async def create(self, request: Request) -> Response:
        return await create_flat(
            self.state,
            self.engine,
            request,
            api=API,
            endpoint="flux/kontext/generate",
            defaults={"model": DEFAULT_MODEL},
            unsupported=unsupported,
            check=editing_tolerance,
        )

    async def record_info(self, request: Request) -> Response:
        return await record_answer(
            self.state, request, self.record, api=API, endpoint="flux/kontext/record-info", retention=True
        )

    def record(self, task: SandboxTask) -> dict[str, Any]:
        failed = task.state == "fail"
        code = documented_code(task, CALLBACK_CODES, GENERIC_FAILURE) if failed else None
        return {
            "taskId": task.task_id,
            "paramJson": param_json(task),
            "completeTime": iso_time(task.complete_time) if task.terminal else None,
            "response": self.images(task) if task.state == "success" else None,
            "successFlag": 1 if task.state == "success" else (3 if failed else 0),
            "errorCode": code,
            "errorMessage": documented_message(task, DEFAULT_MESSAGES, code) if code is not None else "",
            "createTime": iso_time(task.create_time),
        }

    def images(self, task: SandboxTask) -> dict[str, str]:
        result = task.result_urls[0] if task.result_urls else ""
        return {"originImageUrl": self.origin_url(task, result), "resultImageUrl": result}

    def origin_url(self, task: SandboxTask, result: str) -> str:
        """The short-lived upstream copy: registered once, on first use, expiring 10 minutes after the
        task finished."""
        state = self.state
        with state.lock:
            known = task.extra.get("originImageUrl")
            if isinstance(known, str):
                return known
            base, _, path = result.partition("/files/")
            source = state.files.get(path)
            done = finished_at(state, task)
            origin_path = f"origin/{task.task_id}/{path.rpartition('/')[2]}"
            if source is not None:
                until = done + state.config.scaled(ORIGIN_TTL)
                state.store(
                    origin_path,
                    StoredFile(
                        content_type=source.content_type,
                        created_at=done,
                        expires_at=until,
                        retained_until=until,
                        data=source.data,
                        recipe=source.recipe,
                        task_id=task.task_id,
                    ),
                )
            url = f"{base}/files/{origin_path}"
            task.extra["originImageUrl"] = url
            return url

    def callback_bodies(self, task: SandboxTask) -> list[dict[str, Any]]:
        if task.state == "success":
            data = {"taskId": task.task_id, "info": self.images(task)}
            return [{"code": 200, "msg": SUCCESS_MSG, "data": data}]
        code = documented_code(task, CALLBACK_CODES, GENERIC_FAILURE)
        msg = documented_message(task, DEFAULT_MESSAGES, code)
        return [{"code": code, "msg": msg, "data": {"taskId": task.task_id}}]
