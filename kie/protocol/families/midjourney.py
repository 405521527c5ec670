"""Midjourney (kie-api.md §4.3): `POST /api/v1/mj/generate`, `/generateUpscale`, `/generateVary`, and
`GET /api/v1/mj/record-info`.

Every model id fixes its `taskType` (catalogue `endpoint.fixed`), so the body is the user's values plus
`taskType`. Upscale and vary take `{taskId, imageIndex, waterMark}` of a finished image task and are read
through the same record-info.

Status encodings: `successFlag` 0 generating, 1 success, 2 failed (task creation), 3 generation failed,
as an int or a numeric string; a `status` name where a record has no flag.

Result URLs, in the order they are looked for:
- record-info `resultInfoJson.resultUrls[].resultUrl` (`resultInfoJson` may also arrive JSON-encoded, and
  one client reads plain strings in that list);
- the callback's `data.resultUrls[]` (plain strings), also accepted at the top of a record.

Failures: record `errorCode`/`errorMessage` (`failCode`/`failMsg` also read); callback `code` (500) and
`msg`; a record-info envelope 501 ("Generation Failed", listed by the record-info schema).

The record's `taskType` names the model; upscale and vary records are assumed to say `mj_upscale` and
`mj_vary`, the names of their price keys, since no record of either is documented.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from kie.protocol.families.legacy import (
    COMMON_FLAGS,
    LegacyFamily,
    callback_status,
    echoed_input,
    failure_of,
    flag_of,
    flag_state,
    record_status,
    task_id_of,
)
from kie.protocol.task import TaskState, TaskStatus, as_text, mapping_of, urls_at

FLAGS = COMMON_FLAGS
FLAG_FAILURES = {2: "Task creation failed", 3: "Task created successfully but generation failed"}
TASK_TYPES = {
    "mj_txt2img": "midjourney/txt2img",
    "mj_img2img": "midjourney/img2img",
    "mj_style_reference": "midjourney/style-reference",
    "mj_omni_reference": "midjourney/omni-reference",
    "mj_video": "midjourney/video",
    "mj_video_hd": "midjourney/video-hd",
    "mj_upscale": "midjourney/upscale",
    "mj_vary": "midjourney/vary",
}


def result_urls(data: Mapping[str, Any]) -> tuple[str, ...]:
    return urls_at(mapping_of(data.get("resultInfoJson")), "resultUrls") or urls_at(data, "resultUrls")


class MidjourneyFamily(LegacyFamily):
    api = "midjourney"
    status_path = "/api/v1/mj/record-info"
    failed_codes: ClassVar[Mapping[int, str]] = {501: "Generation failed"}

    def parse_record(self, data: Any, task_id: str) -> TaskStatus:
        record = self.record_of(data)
        state, raw_state = flag_state(record, FLAGS)
        state = state or TaskState.PENDING
        fail_code, fail_msg = failure_of(record)
        if fail_msg is None:
            fail_msg = FLAG_FAILURES.get(flag_of(record.get("successFlag")) or 3, "Generation failed")
        task_type = as_text(record.get("taskType"))
        return record_status(
            record,
            task_id,
            state,
            raw_state,
            urls=result_urls(record),
            fail=(fail_code, fail_msg),
            model=TASK_TYPES.get(task_type or ""),
            input=echoed_input(record.get("paramJson"), drop=frozenset({"taskType"})),
            extra={"taskType": task_type} if task_type else {},
        )

    def parse_callback(self, body: Mapping[str, Any]) -> TaskStatus:
        data = body.get("data")
        if not isinstance(data, Mapping):
            raise ValueError("Midjourney callback has no data object")
        task_type = as_text(mapping_of(data.get("promptJson")).get("taskType"))
        return callback_status(
            body,
            task_id_of(data, body),
            result_urls(data),
            default_msg="Image generation failed",
            model=TASK_TYPES.get(task_type or ""),
            input=echoed_input(data.get("promptJson"), drop=frozenset({"taskType"})),
        )
