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

from kie.protocol.families.successflag import (
    FlaggedFamily,
    echoed_input,
    error_text,
    flag_of,
    flag_state,
    task_id_of,
    time_ms,
)
from kie.protocol.task import TaskState, TaskStatus, as_text, loads_maybe, url_list

FLAGS = {0: TaskState.RUNNING, 1: TaskState.SUCCEEDED, 2: TaskState.FAILED, 3: TaskState.FAILED}
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
    info = loads_maybe(data.get("resultInfoJson"))
    if isinstance(info, Mapping):
        urls = url_list(loads_maybe(info.get("resultUrls")))
        if urls:
            return urls
    return url_list(loads_maybe(data.get("resultUrls")))


class MidjourneyFamily(FlaggedFamily):
    api = "midjourney"
    status_path = "/api/v1/mj/record-info"
    failed_codes: ClassVar[Mapping[int, str]] = {501: "Generation failed"}

    def parse_record(self, data: Mapping[str, Any], task_id: str) -> TaskStatus:
        state, raw_state = flag_state(data, FLAGS)
        state = state or TaskState.PENDING
        fail_code = error_text(data.get("errorCode")) or as_text(data.get("failCode"))
        fail_msg = as_text(data.get("errorMessage")) or as_text(data.get("failMsg"))
        if state is TaskState.FAILED and fail_msg is None:
            fail_msg = FLAG_FAILURES.get(flag_of(data.get("successFlag")) or 3, "Generation failed")
        task_type = as_text(data.get("taskType"))
        return TaskStatus(
            task_id=task_id_of(data) or task_id,
            state=state,
            model=TASK_TYPES.get(task_type or ""),
            raw_state=raw_state,
            result_urls=result_urls(data) if state is TaskState.SUCCEEDED else (),
            fail_code=fail_code if state is TaskState.FAILED else None,
            fail_msg=fail_msg if state is TaskState.FAILED else None,
            create_time=time_ms(data.get("createTime")),
            complete_time=time_ms(data.get("completeTime")),
            input=echoed_input(data.get("paramJson"), drop=frozenset({"taskType"})),
            extra={"taskType": task_type} if task_type else {},
            raw=data,
        )

    def parse_callback(self, body: Mapping[str, Any]) -> TaskStatus:
        data = body.get("data")
        if not isinstance(data, Mapping):
            raise ValueError("Midjourney callback has no data object")
        code = as_text(body.get("code")) or "200"
        ok = code == "200"
        prompt = loads_maybe(data.get("promptJson"))
        task_type = as_text(prompt.get("taskType")) if isinstance(prompt, Mapping) else None
        return TaskStatus(
            task_id=task_id_of(data, body),
            state=TaskState.SUCCEEDED if ok else TaskState.FAILED,
            model=TASK_TYPES.get(task_type or ""),
            raw_state=code,
            result_urls=result_urls(data) if ok else (),
            fail_code=None if ok else code,
            fail_msg=None if ok else (as_text(body.get("msg")) or "Image generation failed"),
            input=echoed_input(data.get("promptJson"), drop=frozenset({"taskType"})),
            raw=dict(body),
        )
