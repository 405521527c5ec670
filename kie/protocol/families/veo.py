"""Veo 3.1 (kie-api.md §4.4): `POST /api/v1/veo/generate`, `/extend`, `/get-4k-video`,
`GET /api/v1/veo/get-1080p-video` and `GET /api/v1/veo/record-info`.

Generation models veo3, veo3_fast and veo3_lite share one endpoint; the model id fixes the body's `model`
(catalogue `endpoint.fixed`), so the body is the user's values plus `model` and `callBackUrl`. Kie's own
default, when `model` is absent, is veo3_fast. Extend and 4K return a task id read through record-info,
which the docs call the authority for every Veo task (generation, extension, 1080p and 4K).

Status encodings (record-info): `successFlag` 0 generating, 1 success, 2 failed, 3 generation failed (the
schema's enum stops at 2, its description lists 3), as an int or a numeric string; a `status` name
(`GENERATING`, `SUCCESS`, ...) where a record has no flag. Times are read from every documented spelling:
"YYYY-MM-DD HH:mm:ss" (the example), ISO 8601 (the schema) and millisecond integers (one client's types).

Result URLs, wherever they are documented:
- record-info `response.resultUrls[]` (`response` may arrive JSON-encoded; `result_urls` is read too);
- record-info `data.resultUrls` as a JSON string (the quickstart's parsing code);
- `response.fullResultUrls[]` after an extend (the stitched video clients read; not in the schema): it is
  downloaded after `resultUrls`, since it is the extension's paid deliverable;
- callbacks: `data.info.resultUrls[]` (generation and 4K), and the 4K OpenAPI variant's flat
  `data.result_urls[]` with `data.task_id`;
- the 1080p endpoint's `data.resultUrl` (a single string);
- the 4K endpoint's `data.resultUrls[]`.
`originUrls` (the uncropped video when the ratio is not 16:9), `imageUrls` (4K thumbnails), `mediaIds`,
`resolution` and `fallbackFlag` are kept in `extra`, not downloaded: they are not the requested output.

Failures: record `errorCode`/`errorMessage` (400/500/501); callback `code` (400, 422, 500, 501) and `msg`;
the 4K callback's 500 "The 4K version of this video is unavailable", whose `data` may be null.

The 1080p upgrade is not a task. `GET get-1080p-video?taskId=&index=` answers `data.resultUrl` once the
video is ready and a non-200 code until then (1-3 minutes; the docs say to retry every 20-30 s). Repeating
it is safe: the docs prescribe exactly that retry loop, so a repeat cannot start (or bill) a second
upgrade. It is modelled with the Family interface as:
- "create": a free `record-info` read of the source task. The first 1080p answer is usually "not ready",
  and a create answer that is not 200 is raised as an error, so the upgrade GET cannot be the create. The
  read still rejects unknown sources (422 "record is null") before any waiting;
- the task id: `veo-1080p-<index>-<source taskId>`, built by `parse_created`;
- each poll: the 1080p GET itself. `record is null`, `Temporarily supports records within 14 days`,
  `record status is not success` and `record result data not exist` (source missing, too old, failed, or
  no video at that index) are failures; every other 422 (the docs list "record result data is blank" and
  "... is empty") means "not ready yet". A 500 is not an answer: reads retry it, then it is raised.
`parse_created` gets only the envelope data, which does not carry the requested `index`; `create_request`
therefore records it for the source id in a context variable (per thread, per asyncio task), and
`parse_created` takes it back. A `parse_created` outside that context falls back to index 0.

4K: `POST get-4k-video` returns a task id to read through record-info (the response schema says so). Its
repeat answers, 422 "4k is processing…" and 422 "The video has been generated successfully" with URLs, are
statuses rather than errors; `create_answer` maps them, for a submit flow that consults it.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any

from kie.catalog.spec import ModelSpec
from kie.protocol.envelope import ApiRequest, Envelope
from kie.protocol.families.base import Created
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
from kie.protocol.task import TaskState, TaskStatus, as_int, loads_maybe, urls_at

RECORD_INFO = "/api/v1/veo/record-info"
GET_1080P = "/api/v1/veo/get-1080p-video"
GET_4K = "/api/v1/veo/get-4k-video"
GENERATION_MODELS = frozenset({"veo3", "veo3_fast", "veo3_lite"})
UPGRADE_PREFIX = "veo-1080p-"

FLAGS = COMMON_FLAGS
FLAG_FAILURES = {2: "Task failed", 3: "Task created successfully but generation failed"}
NOT_VISIBLE = ("record is null", "recordinfo is null")
SOURCE_UNUSABLE = (
    "record is null",
    "temporarily supports records within 14 days",
    "record status is not success",
    "record result data not exist",
)
FOUR_K_PROCESSING = "4k is processing"
FOUR_K_DONE = "has been generated successfully"

URL_KEYS = ("resultUrls", "result_urls")
FULL_KEYS = ("fullResultUrls", "full_result_urls")
EXTRA_KEYS = {
    "fullResultUrls": FULL_KEYS,
    "originUrls": ("originUrls", "origin_urls"),
    "imageUrls": ("imageUrls", "image_urls"),
    "mediaIds": ("mediaIds", "media_ids"),
    "resolution": ("resolution",),
}

_UPGRADE_INDEX: ContextVar[dict[str, int] | None] = ContextVar("veo_upgrade_index", default=None)


def upgrade_id(source: str, index: int) -> str:
    return f"{UPGRADE_PREFIX}{index}-{source}"


def parse_upgrade_id(task_id: str) -> tuple[str, int] | None:
    """(source task id, index) of a 1080p id made by `upgrade_id`, else None."""
    if not task_id.startswith(UPGRADE_PREFIX):
        return None
    index, _, source = task_id[len(UPGRADE_PREFIX) :].partition("-")
    if not index.isdigit() or not source:
        return None
    return source, int(index)


def _remember(source: str, index: int) -> None:
    _UPGRADE_INDEX.set({**(_UPGRADE_INDEX.get() or {}), source: index})


def _recall(source: str) -> int:
    pending = dict(_UPGRADE_INDEX.get() or {})
    index = pending.pop(source, 0)
    _UPGRADE_INDEX.set(pending)
    return index


def says(msg: str, phrases: tuple[str, ...]) -> bool:
    text = msg.strip().lower()
    return any(phrase in text for phrase in phrases)


def outputs(source: Any) -> tuple[tuple[str, ...], dict[str, Any]]:
    """(result URLs, extra) from a record's `response`, a callback's `data.info`/`data`, or a 4K answer."""
    if not isinstance(source, Mapping):
        return (), {}
    urls = urls_at(source, *URL_KEYS)
    full = tuple(u for u in urls_at(source, *FULL_KEYS) if u not in urls)
    extra: dict[str, Any] = {}
    for name, keys in EXTRA_KEYS.items():
        for key in keys:
            value = loads_maybe(source.get(key))
            if value not in (None, "", []):
                extra[name] = value
                break
    return urls + full, extra


def first_outputs(*sources: Any) -> tuple[tuple[str, ...], dict[str, Any]]:
    """The outputs of the first source that has result URLs (or of the first, if none has)."""
    found = [outputs(source) for source in sources]
    for urls, extra in found:
        if urls:
            return urls, extra
    return found[0] if found else ((), {})


def echoed_model(param: Any) -> str | None:
    """The generation model a record's `paramJson` names (an extend's `fast|quality|lite` is not one)."""
    decoded = loads_maybe(param)
    model = decoded.get("model") if isinstance(decoded, Mapping) else None
    return model if model in GENERATION_MODELS else None


class VeoFamily(LegacyFamily):
    api = "veo"
    status_path = RECORD_INFO

    def create_request(
        self, spec: ModelSpec, values: Mapping[str, Any], callback_url: str | None
    ) -> ApiRequest:
        if spec.endpoint.create == GET_1080P:
            return self.source_check(spec, values)
        return super().create_request(spec, values, callback_url)

    def source_check(self, spec: ModelSpec, values: Mapping[str, Any]) -> ApiRequest:
        """The 1080p "create": read the source task (free), remembering the index for `parse_created`."""
        source = str(values.get("taskId") or "")
        _remember(source, as_int(values.get("index")) or 0)
        return ApiRequest(
            "GET", spec.endpoint.status, params={"taskId": source}, label=f"{spec.id} source record-info"
        )

    def parse_created(self, spec: ModelSpec, data: Any) -> Created:
        task_id = super().parse_created(spec, data).task_id
        if spec.endpoint.create == GET_1080P:
            return Created(upgrade_id(task_id, _recall(task_id)))
        assert isinstance(data, Mapping)
        urls, extra = outputs(data)
        if urls:
            return Created(task_id, self.finished(task_id, spec.id, urls, extra, data))
        return Created(task_id)

    def create_answer(self, spec: ModelSpec, env: Envelope) -> Created | None:
        """A non-200 create answer that is a status, not an error: the 4K endpoint's repeat answers."""
        if spec.endpoint.create != GET_4K or env.code != 422 or not isinstance(env.data, Mapping):
            return None
        task_id = task_id_of(env.data)
        if not task_id:
            return None
        if says(env.msg, (FOUR_K_PROCESSING,)):
            return Created(task_id)
        urls, extra = outputs(env.data)
        if says(env.msg, (FOUR_K_DONE,)) and urls:
            return Created(task_id, self.finished(task_id, spec.id, urls, extra, env.data))
        return None

    @staticmethod
    def finished(
        task_id: str, model: str, urls: tuple[str, ...], extra: dict[str, Any], raw: Any
    ) -> TaskStatus:
        return TaskStatus(task_id, TaskState.SUCCEEDED, model=model, result_urls=urls, extra=extra, raw=raw)

    def status_request(self, spec: ModelSpec | None, task_id: str) -> ApiRequest:
        upgrade = parse_upgrade_id(task_id)
        if upgrade is not None:
            source, index = upgrade
            params = {"taskId": source, "index": index}
            return ApiRequest("GET", GET_1080P, params=params, label="veo get-1080p-video")
        return super().status_request(spec, task_id)

    def not_visible(self, env: Envelope) -> bool:
        """Kie's answers for an id it does not (yet) know: 404, or 422 "record is null"."""
        return env.code == 404 or (env.code == 422 and says(env.msg, NOT_VISIBLE))

    def parse_status(self, env: Envelope, task_id: str) -> TaskStatus:
        upgrade = parse_upgrade_id(task_id)
        if upgrade is not None:
            return self.parse_upgrade(env, task_id, *upgrade)
        return super().parse_status(env, task_id)

    def parse_upgrade(self, env: Envelope, task_id: str, source: str, index: int) -> TaskStatus:
        """One answer of the 1080p endpoint: the URL, "not ready yet", or a source that cannot be upgraded."""
        extra = {"sourceTaskId": source, "index": index, "resolution": "1080p"}
        data = env.data if isinstance(env.data, Mapping) else {}
        urls = urls_at(data, "resultUrl", *URL_KEYS) if env.ok else ()
        if urls:
            return TaskStatus(
                task_id,
                TaskState.SUCCEEDED,
                model="veo3/1080p",
                raw_state="200",
                result_urls=urls,
                extra=extra,
                raw=env.data,
            )
        if not env.ok and says(env.msg, SOURCE_UNUSABLE):
            return TaskStatus(
                task_id,
                TaskState.FAILED,
                model="veo3/1080p",
                raw_state=str(env.code),
                fail_code=str(env.code),
                fail_msg=env.msg,
                extra=extra,
                raw=env.data,
            )
        return TaskStatus(
            task_id, TaskState.RUNNING, model="veo3/1080p", raw_state=str(env.code), extra=extra, raw=env.data
        )

    def parse_record(self, data: Any, task_id: str) -> TaskStatus:
        record = self.record_of(data)
        state, raw_state = flag_state(record, FLAGS)
        fail_code, fail_msg = failure_of(record)
        if state is None:
            state = TaskState.FAILED if fail_code or fail_msg else TaskState.PENDING
        urls, extra = first_outputs(loads_maybe(record.get("response")), record)
        if record.get("fallbackFlag") is not None:
            extra["fallbackFlag"] = record["fallbackFlag"]
        flag = flag_of(record.get("successFlag"))
        default_msg = FLAG_FAILURES.get(flag if flag is not None else -1, "Generation failed")
        return record_status(
            record,
            task_id,
            state,
            raw_state,
            urls=urls,
            fail=(fail_code, fail_msg or default_msg),
            model=echoed_model(record.get("paramJson")),
            input=echoed_input(record.get("paramJson")),
            extra=extra,
        )

    def parse_callback(self, body: Mapping[str, Any]) -> TaskStatus:
        data = body.get("data")
        info = loads_maybe(data.get("info")) if isinstance(data, Mapping) else None
        urls, extra = first_outputs(info, data)
        if isinstance(data, Mapping) and data.get("fallbackFlag") is not None:
            extra["fallbackFlag"] = data["fallbackFlag"]
        return callback_status(body, task_id_of(data, body), urls, extra=extra)
