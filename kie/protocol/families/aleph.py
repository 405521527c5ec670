"""Runway Aleph (kie-api.md §4.6): `POST /api/v1/aleph/generate`, `GET /api/v1/aleph/record-info`.

Status encodings: `successFlag` is only 0 or 1 (int or numeric string). 1 is success. 0 is "in progress"
while `errorMessage` is empty and `errorCode` is 0, and "failed" once either is set: the record-info page
lists exactly these three cases (processing: flag 0 and no errorMessage; failed: flag 0 and an
errorMessage). Flags 2 and 3, which the sibling legacy APIs use for failures, are read as failures too
should Aleph ever send them.

Result URLs: the video at record-info `response.resultVideoUrl` or the callback's
`data.result_video_url` (each spelling is accepted in either place). The thumbnail
(`resultImageUrl` / `result_image_url`) is kept in `extra["cover_url"]` rather than downloaded as a
second result: the model's output is the one video.

The callback carries `taskId` at the top level, beside `data` (which is null on failure); a `taskId`
inside `data` is accepted too. Failures: record `errorCode`/`errorMessage`; callback `code` (400) and
`msg`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kie.protocol.families.successflag import (
    FlaggedFamily,
    echoed_input,
    error_text,
    flag_state,
    task_id_of,
    time_ms,
)
from kie.protocol.task import TaskState, TaskStatus, as_text, loads_maybe

FLAGS = {0: TaskState.RUNNING, 1: TaskState.SUCCEEDED, 2: TaskState.FAILED, 3: TaskState.FAILED}
VIDEO_KEYS = ("resultVideoUrl", "result_video_url")
COVER_KEYS = ("resultImageUrl", "result_image_url")


def first_url(source: Any, keys: tuple[str, ...]) -> str | None:
    if not isinstance(source, Mapping):
        return None
    for key in keys:
        value = source.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def outputs(source: Any) -> tuple[tuple[str, ...], dict[str, Any]]:
    """(result URLs, extra) from a record's `response` or a callback's `data`."""
    video = first_url(source, VIDEO_KEYS)
    cover = first_url(source, COVER_KEYS)
    return ((video,) if video else ()), ({"cover_url": cover} if cover else {})


class AlephFamily(FlaggedFamily):
    api = "aleph"
    status_path = "/api/v1/aleph/record-info"

    def parse_record(self, data: Mapping[str, Any], task_id: str) -> TaskStatus:
        state, raw_state = flag_state(data, FLAGS)
        state = state or TaskState.PENDING
        fail_code = error_text(data.get("errorCode")) or as_text(data.get("failCode"))
        fail_msg = as_text(data.get("errorMessage")) or as_text(data.get("failMsg"))
        if state is not TaskState.SUCCEEDED and (fail_code or fail_msg):
            state = TaskState.FAILED
        failed = state is TaskState.FAILED
        urls, extra = outputs(loads_maybe(data.get("response")))
        return TaskStatus(
            task_id=task_id_of(data) or task_id,
            state=state,
            model="runway/aleph",
            raw_state=raw_state,
            result_urls=urls if state is TaskState.SUCCEEDED else (),
            fail_code=fail_code if failed else None,
            fail_msg=(fail_msg or "Generation failed") if failed else None,
            create_time=time_ms(data.get("createTime")),
            complete_time=time_ms(data.get("completeTime")),
            input=echoed_input(data.get("paramJson")),
            extra=extra,
            raw=data,
        )

    def parse_callback(self, body: Mapping[str, Any]) -> TaskStatus:
        data = body.get("data")
        code = as_text(body.get("code")) or "200"
        ok = code == "200"
        urls, extra = outputs(data)
        return TaskStatus(
            task_id=task_id_of(body, data),
            state=TaskState.SUCCEEDED if ok else TaskState.FAILED,
            model="runway/aleph",
            raw_state=code,
            result_urls=urls if ok else (),
            fail_code=None if ok else code,
            fail_msg=None if ok else (as_text(body.get("msg")) or "Generation failed"),
            extra=extra if ok else {},
            raw=dict(body),
        )
