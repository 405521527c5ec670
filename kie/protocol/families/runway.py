"""Runway Gen (kie-api.md §4.5): `POST /api/v1/runway/generate`, `POST /api/v1/runway/extend` and
`GET /api/v1/runway/record-detail`.

Both creates take a flat body (the user's values plus `callBackUrl`, which the docs call required, so the
client always sends one) and answer `data.taskId`; both tasks are read through record-detail.

Status encoding: the record's `state` string, `wait` (submitted, not queued), `queueing`, `generating`,
`success`, `fail`. The other spellings of Kie's sibling APIs (`waiting`, `queuing`, `failed`, upper case:
the shared legacy vocabulary) are read too, and an unknown non-empty state reads as running: polling on is
safer than declaring a paid task lost. `generateTime` is "YYYY-MM-DD HH:mm:ss" (read as UTC, no source
names a zone; ms integers and ISO strings are accepted too). `expireFlag` 1 means the files passed
their 14 days.

Two documented record variants: `taskId`/`parentTaskId`, and an older one with numeric `id`/`parentId`
(0 = no parent) where the task id is only inside `videoInfo.taskId`. The numeric `id` is a row number,
not a task id, so it is kept in `extra["id"]` and never used as the task id.

Result URLs: the record's `videoInfo.videoUrl` and the callback's snake_case `data.video_url` (each
spelling is read in either place). The cover image (`imageUrl` / `image_url`) goes to `extra["cover_url"]`
and `videoId` / `video_id` to `extra["video_id"]`: the model's output is the one video.

Failures: the record's `failCode`/`failMsg` (the docs show `failCode` as 400 or as ""; both are read, and
either is ignored unless the state is `fail`, because one docs example pairs `state: wait` with
`failCode: 400`); the callback's `code` (400, 500) and `msg`, where `data` keeps `task_id` and empty URLs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kie.protocol.families.legacy import (
    LegacyFamily,
    callback_status,
    record_status,
    task_id_of,
    word_state,
)
from kie.protocol.task import TaskStatus, as_text, epoch_ms, loads_maybe, text_at

VIDEO_KEYS = ("videoUrl", "video_url")
COVER_KEYS = ("imageUrl", "image_url")
VIDEO_ID_KEYS = ("videoId", "video_id")


def video_outputs(source: Any) -> tuple[tuple[str, ...], dict[str, Any]]:
    """(result URLs, extra) from a record's `videoInfo` or a callback's `data`."""
    video = text_at(source, *VIDEO_KEYS)
    extra: dict[str, Any] = {}
    for name, keys in (("cover_url", COVER_KEYS), ("video_id", VIDEO_ID_KEYS)):
        value = text_at(source, *keys)
        if value:
            extra[name] = value
    return ((video,) if video else ()), extra


def parent_of(data: Mapping[str, Any]) -> str | None:
    """The source task of an extension; the numeric variant says 0 for "none"."""
    parent = as_text(data.get("parentTaskId")) or as_text(data.get("parentId"))
    return None if parent in (None, "0") else parent


class RunwayFamily(LegacyFamily):
    api = "runway"
    status_path = "/api/v1/runway/record-detail"
    status_name = "record-detail"

    def parse_record(self, data: Any, task_id: str) -> TaskStatus:
        record = self.record_of(data)
        raw_state = as_text(record.get("state"))
        state = word_state(raw_state)
        info = loads_maybe(record.get("videoInfo"))
        urls, extra = video_outputs(info)
        parent = parent_of(record)
        if parent:
            extra["parentTaskId"] = parent
        for key in ("id", "expireFlag"):
            if record.get(key) is not None:
                extra[key] = record[key]
        param = loads_maybe(record.get("generateParam"))
        return record_status(
            record,
            task_id_of(info) or task_id,
            state,
            raw_state,
            urls=urls,
            fail=(as_text(record.get("failCode")), as_text(record.get("failMsg")) or "Generation failed"),
            create_time=epoch_ms(record.get("generateTime")),
            complete_time=None,
            input=dict(param) if isinstance(param, Mapping) else None,
            extra=extra,
        )

    def parse_callback(self, body: Mapping[str, Any]) -> TaskStatus:
        data = body.get("data")
        urls, extra = video_outputs(data)
        return callback_status(body, task_id_of(data, body), urls, extra=extra)
