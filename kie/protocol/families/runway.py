"""Runway Gen (kie-api.md §4.5): `POST /api/v1/runway/generate`, `POST /api/v1/runway/extend` and
`GET /api/v1/runway/record-detail`.

Both creates take a flat body (the user's values plus `callBackUrl`, which the docs call required, so the
client always sends one) and answer `data.taskId`; both tasks are read through record-detail.

Status encoding: the record's `state` string, `wait` (submitted, not queued), `queueing`, `generating`,
`success`, `fail`. Other spellings seen in Kie's sibling APIs (`waiting`, `queuing`, `failed`, upper case)
are read too, and an unknown non-empty state reads as running: polling on is safer than declaring a paid
task lost. `generateTime` is "YYYY-MM-DD HH:mm:ss" (read as UTC, no source names a zone; ms integers and
ISO strings are accepted too). `expireFlag` 1 means the files passed their 14 days.

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

from kie.catalog.spec import ModelSpec
from kie.protocol.envelope import ApiRequest, Envelope, error_for
from kie.protocol.families.base import Created
from kie.protocol.families.successflag import task_id_of, time_ms
from kie.protocol.task import TaskState, TaskStatus, as_text, loads_maybe

RECORD_DETAIL = "/api/v1/runway/record-detail"
STATES = {
    "wait": TaskState.PENDING,
    "waiting": TaskState.PENDING,
    "queueing": TaskState.PENDING,
    "queuing": TaskState.PENDING,
    "generating": TaskState.RUNNING,
    "success": TaskState.SUCCEEDED,
    "fail": TaskState.FAILED,
    "failed": TaskState.FAILED,
}
VIDEO_KEYS = ("videoUrl", "video_url")
COVER_KEYS = ("imageUrl", "image_url")
VIDEO_ID_KEYS = ("videoId", "video_id")


def text_at(source: Any, keys: tuple[str, ...]) -> str | None:
    if not isinstance(source, Mapping):
        return None
    for key in keys:
        value = as_text(source.get(key))
        if value:
            return value
    return None


def video_outputs(source: Any) -> tuple[tuple[str, ...], dict[str, Any]]:
    """(result URLs, extra) from a record's `videoInfo` or a callback's `data`."""
    video = text_at(source, VIDEO_KEYS)
    extra: dict[str, Any] = {}
    for name, keys in (("cover_url", COVER_KEYS), ("video_id", VIDEO_ID_KEYS)):
        value = text_at(source, keys)
        if value:
            extra[name] = value
    return ((video,) if video else ()), extra


def state_of(raw: str | None) -> TaskState:
    if not raw:
        return TaskState.PENDING
    return STATES.get(raw.strip().lower(), TaskState.RUNNING)


def parent_of(data: Mapping[str, Any]) -> str | None:
    """The source task of an extension; the numeric variant says 0 for "none"."""
    parent = as_text(data.get("parentTaskId")) or as_text(data.get("parentId"))
    return None if parent in (None, "0") else parent


class RunwayFamily:
    api = "runway"

    def create_request(
        self, spec: ModelSpec, values: Mapping[str, Any], callback_url: str | None
    ) -> ApiRequest:
        body: dict[str, Any] = dict(values)
        body.update(spec.endpoint.fixed)
        if callback_url:
            body["callBackUrl"] = callback_url
        return ApiRequest("POST", spec.endpoint.create, kind="create", json=body, label=f"create {spec.id}")

    def parse_created(self, spec: ModelSpec, data: Any) -> Created:
        task_id = task_id_of(data)
        if task_id:
            return Created(task_id)
        raise ValueError(f"create answer carries no taskId: {data!r}")

    def status_request(self, spec: ModelSpec | None, task_id: str) -> ApiRequest:
        path = spec.endpoint.status if spec is not None else RECORD_DETAIL
        return ApiRequest("GET", path, params={"taskId": task_id}, label="runway record-detail")

    def not_visible(self, env: Envelope) -> bool:
        """404 or 422: the answers for an id Kie does not know (yet)."""
        return env.code in (404, 422)

    def answers(self) -> frozenset[int]:
        return frozenset({404, 422})

    def parse_status(self, env: Envelope, task_id: str) -> TaskStatus:
        if not env.ok:
            raise error_for(env, task_id=task_id)
        if not isinstance(env.data, Mapping):
            raise ValueError(f"runway record-detail data is not an object: {env.data!r}")
        return self.parse_record(env.data, task_id)

    def parse_record(self, data: Mapping[str, Any], task_id: str) -> TaskStatus:
        raw_state = as_text(data.get("state"))
        state = state_of(raw_state)
        info = loads_maybe(data.get("videoInfo"))
        urls, extra = video_outputs(info)
        parent = parent_of(data)
        if parent:
            extra["parentTaskId"] = parent
        for key in ("id", "expireFlag"):
            if data.get(key) is not None:
                extra[key] = data[key]
        failed = state is TaskState.FAILED
        param = loads_maybe(data.get("generateParam"))
        return TaskStatus(
            task_id=task_id_of(data, info) or task_id,
            state=state,
            raw_state=raw_state,
            result_urls=urls if state is TaskState.SUCCEEDED else (),
            fail_code=as_text(data.get("failCode")) if failed else None,
            fail_msg=(as_text(data.get("failMsg")) or "Generation failed") if failed else None,
            create_time=time_ms(data.get("generateTime")),
            input=dict(param) if isinstance(param, Mapping) else None,
            extra=extra,
            raw=data,
        )

    def parse_callback(self, body: Mapping[str, Any]) -> TaskStatus:
        data = body.get("data")
        code = as_text(body.get("code")) or "200"
        ok = code == "200"
        urls, extra = video_outputs(data)
        return TaskStatus(
            task_id=task_id_of(data, body),
            state=TaskState.SUCCEEDED if ok else TaskState.FAILED,
            raw_state=code,
            result_urls=urls if ok else (),
            fail_code=None if ok else code,
            fail_msg=None if ok else (as_text(body.get("msg")) or "Generation failed"),
            extra=extra,
            raw=dict(body),
        )
