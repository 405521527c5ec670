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

from kie.protocol.families.legacy import (
    COMMON_FLAGS,
    LegacyFamily,
    callback_code,
    callback_status,
    echoed_input,
    failure_of,
    flag_state,
    record_status,
    task_id_of,
)
from kie.protocol.task import TaskState, TaskStatus, loads_maybe, text_at

FLAGS = COMMON_FLAGS
VIDEO_KEYS = ("resultVideoUrl", "result_video_url")
COVER_KEYS = ("resultImageUrl", "result_image_url")


def outputs(source: Any) -> tuple[tuple[str, ...], dict[str, Any]]:
    """(result URLs, extra) from a record's `response` or a callback's `data`."""
    video = text_at(source, *VIDEO_KEYS)
    cover = text_at(source, *COVER_KEYS)
    return ((video,) if video else ()), ({"cover_url": cover} if cover else {})


class AlephFamily(LegacyFamily):
    api = "aleph"
    status_path = "/api/v1/aleph/record-info"

    def parse_record(self, data: Any, task_id: str) -> TaskStatus:
        record = self.record_of(data)
        state, raw_state = flag_state(record, FLAGS)
        state = state or TaskState.PENDING
        fail_code, fail_msg = failure_of(record)
        if state is not TaskState.SUCCEEDED and (fail_code or fail_msg):
            state = TaskState.FAILED
        urls, extra = outputs(loads_maybe(record.get("response")))
        return record_status(
            record,
            task_id,
            state,
            raw_state,
            urls=urls,
            fail=(fail_code, fail_msg or "Generation failed"),
            model="runway/aleph",
            input=echoed_input(record.get("paramJson")),
            extra=extra,
        )

    def parse_callback(self, body: Mapping[str, Any]) -> TaskStatus:
        data = body.get("data")
        urls, extra = outputs(data)
        return callback_status(
            body,
            task_id_of(body, data),
            urls,
            model="runway/aleph",
            extra=extra if callback_code(body) == "200" else {},
        )
