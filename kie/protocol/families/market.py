"""The Market ("jobs") API: `POST /api/v1/jobs/createTask`, `GET /api/v1/jobs/recordInfo`.

Shapes follow recorded real traffic (kie-api.md §3): `param` is a JSON string whose `input` is itself a
JSON string; `resultJson` is `""` until success; `costTime` is in seconds; envelope code 501 or 408 on
recordInfo means the task failed even though `state` may not say so.

The body carries what the user set plus the fields the price depends on (and those Kie requires), and
nothing else: Kie echoes back exactly what it was sent and applies its own defaults otherwise, so a
copied default that drifted from Kie's would silently change the request. Suno's createTask forms
(`ai-music-api/*`) answer in their own shape: songs under `data`, lyrics under
`resultObject.lyricsData`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kie.catalog.spec import ModelSpec
from kie.catalog.validate import wire_defaults
from kie.protocol.envelope import ApiRequest, Envelope, error_for
from kie.protocol.families.base import Created
from kie.protocol.task import (
    TaskState,
    TaskStatus,
    as_float,
    as_int,
    as_text,
    loads_maybe,
    url_list,
)

STATES = {
    "waiting": TaskState.PENDING,
    "queuing": TaskState.PENDING,
    "generating": TaskState.RUNNING,
    "success": TaskState.SUCCEEDED,
    "fail": TaskState.FAILED,
}
# recordInfo envelope codes that mean "this task failed" rather than "this request failed".
FAILED_CODES = {501: "Generation failed", 408: "Upstream returned no result for over 10 minutes"}
NOT_VISIBLE_CODES = {404, 422}


def wire_input(spec: ModelSpec, values: Mapping[str, Any]) -> dict[str, Any]:
    """The `input` to send: the given values without nulls, plus the documented default of every
    price-determining or required field that is missing (inputs validated by an older kie, or built by
    hand, may lack them; the charge must still match the estimate)."""
    body = {k: v for k, v in values.items() if v is not None}
    if not spec.schema_published:
        return body
    for name in sorted(wire_defaults(spec)):
        default = spec.fields[name].default
        if name not in body and default is not None and default not in ("", [], [""]):
            body[name] = default
    return body


def _music_result(result: Mapping[str, Any]) -> tuple[tuple[str, ...], dict[str, Any]]:
    """Results of Suno's createTask forms: songs under `data`, lyrics under `resultObject.lyricsData`."""
    from kie.protocol.families.suno import gather

    inner = result.get("resultObject")
    found = gather(result, inner if isinstance(inner, Mapping) else None)
    songs = [s for s in result.get("data") or [] if isinstance(s, Mapping)]
    for song in songs:
        url = song.get("audio_url") or song.get("audioUrl")
        if isinstance(url, str):
            found.add(url)
    if songs and "tracks" not in found.extra:
        found.extra["tracks"] = [dict(s) for s in songs]
    return tuple(found.urls), found.extra


class MarketFamily:
    api = "market"

    def create_request(
        self, spec: ModelSpec, values: Mapping[str, Any], callback_url: str | None
    ) -> ApiRequest:
        body: dict[str, Any] = {"model": spec.id, "input": wire_input(spec, values)}
        if callback_url:
            body["callBackUrl"] = callback_url
        return ApiRequest("POST", spec.endpoint.create, kind="create", json=body, label=f"create {spec.id}")

    def parse_created(self, spec: ModelSpec, data: Any) -> Created:
        if isinstance(data, Mapping):
            task_id = data.get("taskId") or data.get("task_id") or data.get("recordId")
            if task_id:
                return Created(str(task_id))
        raise ValueError(f"create answer carries no taskId: {data!r}")

    def answers(self) -> frozenset[int]:
        return frozenset({404, 422, *FAILED_CODES})

    def status_request(self, spec: ModelSpec | None, task_id: str) -> ApiRequest:
        path = spec.endpoint.status if spec is not None else "/api/v1/jobs/recordInfo"
        return ApiRequest("GET", path, params={"taskId": task_id}, label="recordInfo")

    def not_visible(self, env: Envelope) -> bool:
        """True for the "recordInfo is null" answers Kie gives right after a create."""
        return env.code in NOT_VISIBLE_CODES

    def parse_status(self, env: Envelope, task_id: str) -> TaskStatus:
        if env.code in FAILED_CODES:
            return TaskStatus(
                task_id,
                TaskState.FAILED,
                fail_code=str(env.code),
                fail_msg=env.msg or FAILED_CODES[env.code],
                raw=env.data,
            )
        if not env.ok:
            raise error_for(env, task_id=task_id)
        return self.parse_record(env.data, task_id)

    def parse_record(self, data: Any, task_id: str, *, credits: Any = None) -> TaskStatus:
        if not isinstance(data, Mapping):
            raise ValueError(f"recordInfo data is not an object: {data!r}")
        raw_state = as_text(data.get("state"))
        state = STATES.get((raw_state or "").lower(), TaskState.RUNNING if raw_state else TaskState.PENDING)
        result = loads_maybe(data.get("resultJson"))
        urls: tuple[str, ...] = ()
        extra: dict[str, Any] = {}
        if isinstance(result, Mapping):
            urls = url_list(result.get("resultUrls"))
            extra = {k: v for k, v in result.items() if k != "resultUrls"}
            if not urls and ("data" in result or "resultObject" in result):
                urls, music = _music_result(result)
                extra.update(music)
        param = loads_maybe(data.get("param"))
        values = loads_maybe(param.get("input")) if isinstance(param, Mapping) else None
        if credits is None:
            credits = data.get("creditsConsumed", data.get("consumeCredits"))
        return TaskStatus(
            task_id=str(data.get("taskId") or task_id),
            state=state,
            model=as_text(data.get("model")),
            raw_state=raw_state,
            result_urls=urls,
            fail_code=as_text(data.get("failCode")),
            fail_msg=as_text(data.get("failMsg")),
            cost_time=as_float(data.get("costTime")),
            create_time=as_int(data.get("createTime")),
            complete_time=as_int(data.get("completeTime")),
            progress=as_float(data.get("progress")),
            credits_consumed=as_float(credits),
            input=values if isinstance(values, dict) else None,
            extra=extra,
            raw=data,
        )

    def parse_callback(self, body: Mapping[str, Any]) -> TaskStatus:
        data = body.get("data")
        if not isinstance(data, Mapping):
            raise ValueError("Market callback has no data object")
        task_id = str(data.get("taskId") or data.get("task_id") or "")
        return self.parse_record(data, task_id)
