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

from kie.protocol.families.legacy import (
    COMMON_FLAGS,
    STATUS_WORDS,
    LegacyFamily,
    callback_status,
    echoed_input,
    failure_of,
    flag_of,
    flag_state,
    record_status,
    task_id_of,
)
from kie.protocol.task import TaskState, TaskStatus, mapping_of, url_list, urls_at

FLAGS = {**COMMON_FLAGS, 4: TaskState.SUCCEEDED}
NAMES = {**STATUS_WORDS, "CALLBACK_FAILED": TaskState.SUCCEEDED}
FLAG_FAILURES = {2: "Failed to create the task", 3: "Task creation succeeded but generation failed"}


def result_urls(data: Mapping[str, Any]) -> tuple[str, ...]:
    return urls_at(mapping_of(data.get("response")), "resultUrls", "result_urls") or urls_at(
        data, "resultUrls"
    )


class LumaFamily(LegacyFamily):
    api = "luma"
    status_path = "/api/v1/modify/record-info"
    failed_codes: ClassVar[Mapping[int, str]] = {501: "Video generation task failed"}

    def parse_record(self, data: Any, task_id: str) -> TaskStatus:
        record = self.record_of(data)
        state, raw_state = flag_state(record, FLAGS, NAMES)
        state = state or TaskState.PENDING
        fail_code, fail_msg = failure_of(record)
        if fail_msg is None:
            fail_msg = FLAG_FAILURES.get(flag_of(record.get("successFlag")) or 3, "Generation failed")
        origin = url_list(mapping_of(record.get("response")).get("originUrls"))
        extra: dict[str, Any] = {"origin_urls": list(origin)} if origin else {}
        if flag_of(record.get("successFlag")) == 4 and record.get("errorMessage"):
            extra["callback_error"] = record["errorMessage"]
        return record_status(
            record,
            task_id,
            state,
            raw_state,
            urls=result_urls(record),
            fail=(fail_code, fail_msg),
            model="luma/modify",
            input=echoed_input(record.get("paramJson")),
            extra=extra,
        )

    def parse_callback(self, body: Mapping[str, Any]) -> TaskStatus:
        data = body.get("data")
        if not isinstance(data, Mapping):
            raise ValueError("Luma callback has no data object")
        return callback_status(
            body,
            task_id_of(data, body),
            result_urls(data),
            default_msg="Modify record generation failed.",
            model="luma/modify",
            input=echoed_input(data.get("promptJson")),
        )
