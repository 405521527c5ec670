"""Luma Modify (kie-api.md §4.7): `POST /api/v1/modify/generate`, `GET /api/v1/modify/record-info`.

Status encodings: `successFlag` 0 generating, 1 success, 2 task creation failed, 3 generation failed,
4 callback failed (as an int or a numeric string), or the quickstart's names `GENERATING`, `SUCCESS`,
`CREATE_TASK_FAILED`, `GENERATE_FAILED`, `CALLBACK_FAILED`. Flag 4 means Kie could not deliver the
callback although the video was made: it is a success and its result URLs are returned, because treating
it as a failure would abandon a paid video.

Result URLs: record-info `response.resultUrls[]` (`response` may arrive JSON-encoded; `result_urls` is
read too, as in the sibling 4o docs), and the callback's `data.resultUrls[]`. `response.originUrls[]` (the
source video) is kept in `extra["origin_urls"]`, not downloaded.

Failures: record `errorCode`/`errorMessage`; callback `code` 500 with `msg` ("Modify record generation
failed."); a record-info envelope 501 ("Video generation task failed", listed by its schema).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from kie.protocol.families.successflag import (
    STATUS_NAMES,
    FlaggedFamily,
    echoed_input,
    error_text,
    flag_of,
    flag_state,
    task_id_of,
    time_ms,
)
from kie.protocol.task import TaskState, TaskStatus, as_text, loads_maybe, url_list

FLAGS = {
    0: TaskState.RUNNING,
    1: TaskState.SUCCEEDED,
    2: TaskState.FAILED,
    3: TaskState.FAILED,
    4: TaskState.SUCCEEDED,
}
NAMES = {**STATUS_NAMES, "CALLBACK_FAILED": TaskState.SUCCEEDED}
FLAG_FAILURES = {2: "Failed to create the task", 3: "Task creation succeeded but generation failed"}


def response_of(data: Mapping[str, Any]) -> Mapping[str, Any]:
    response = loads_maybe(data.get("response"))
    return response if isinstance(response, Mapping) else {}


def result_urls(data: Mapping[str, Any]) -> tuple[str, ...]:
    response = response_of(data)
    for source, key in ((response, "resultUrls"), (response, "result_urls"), (data, "resultUrls")):
        urls = url_list(loads_maybe(source.get(key)))
        if urls:
            return urls
    return ()


class LumaFamily(FlaggedFamily):
    api = "luma"
    status_path = "/api/v1/modify/record-info"
    failed_codes: ClassVar[Mapping[int, str]] = {501: "Video generation task failed"}

    def parse_record(self, data: Mapping[str, Any], task_id: str) -> TaskStatus:
        state, raw_state = flag_state(data, FLAGS, NAMES)
        state = state or TaskState.PENDING
        failed = state is TaskState.FAILED
        fail_msg = as_text(data.get("errorMessage")) or as_text(data.get("failMsg"))
        if failed and fail_msg is None:
            fail_msg = FLAG_FAILURES.get(flag_of(data.get("successFlag")) or 3, "Generation failed")
        origin = url_list(response_of(data).get("originUrls"))
        extra: dict[str, Any] = {"origin_urls": list(origin)} if origin else {}
        if flag_of(data.get("successFlag")) == 4 and data.get("errorMessage"):
            extra["callback_error"] = data["errorMessage"]
        return TaskStatus(
            task_id=task_id_of(data) or task_id,
            state=state,
            model="luma/modify",
            raw_state=raw_state,
            result_urls=result_urls(data) if state is TaskState.SUCCEEDED else (),
            fail_code=(error_text(data.get("errorCode")) or as_text(data.get("failCode")))
            if failed
            else None,
            fail_msg=fail_msg if failed else None,
            create_time=time_ms(data.get("createTime")),
            complete_time=time_ms(data.get("completeTime")),
            input=echoed_input(data.get("paramJson")),
            extra=extra,
            raw=data,
        )

    def parse_callback(self, body: Mapping[str, Any]) -> TaskStatus:
        data = body.get("data")
        if not isinstance(data, Mapping):
            raise ValueError("Luma callback has no data object")
        code = as_text(body.get("code")) or "200"
        ok = code == "200"
        return TaskStatus(
            task_id=task_id_of(data, body),
            state=TaskState.SUCCEEDED if ok else TaskState.FAILED,
            model="luma/modify",
            raw_state=code,
            result_urls=result_urls(data) if ok else (),
            fail_code=None if ok else code,
            fail_msg=None if ok else (as_text(body.get("msg")) or "Modify record generation failed."),
            input=echoed_input(data.get("promptJson")),
            raw=dict(body),
        )
