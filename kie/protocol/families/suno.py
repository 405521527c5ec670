"""The Suno family (kie-api.md §4.8, §5, Appendix B): music, lyrics, WAV, stems, MIDI, MP4 and cover
images on their own record-info endpoints, plus three synchronous helpers (style boost, persona,
timestamped lyrics) whose create answer already is the result.

Requests are flat bodies: the input, the fields the model id fixes (`model` for generate, `type` for
vocal removal) and `callBackUrl`, which Kie requires for every asynchronous Suno call [REAL].

Status encodings mapped to `TaskState` (case-insensitive; ints and digit strings alike):
- `status` (generate, lyrics; wav on the sunoapi mirror): PENDING → pending; TEXT_SUCCESS and
  FIRST_SUCCESS → running with progress 0.33 / 0.66; SUCCESS → succeeded; CREATE_TASK_FAILED,
  GENERATE_AUDIO_FAILED, GENERATE_MUSIC_FAILED (S-HAS), GENERATE_LYRICS_FAILED, GENERATE_WAV_FAILED,
  GENERATE_MP4_FAILED, GENERATE_COVER_FAILED, SENSITIVE_WORD_ERROR and any other *_FAILED / *_ERROR →
  failed; CALLBACK_EXCEPTION → succeeded when results exist (only the callback failed, the audio was
  made), else failed.
- `successFlag` as a string (wav, vocal-removal, mp4: the names above), as an int or digit string
  (midi, cover: 0 pending, 1 success, 2 create failed, 3 generation failed), or "成功" (style boost
  [REAL]).
- Market-like `state` words (waiting, queuing, generating, success, fail), should they appear.
- Callbacks: `callbackType` text / first → running (0.33 / 0.66), complete → succeeded, error →
  failed; a callback `code` other than 200 is a failure whatever else the body says; single-stage
  callbacks (wav, stems, midi, mp4, cover) succeed on code 200.

Result locations, in the record's `data.response`, in `data` itself, or in a callback's `data`, in
camelCase or snake_case (snake_case keys are camelised first, so both read the same):
- music: `sunoData[].audioUrl` (callbacks: `data[].audio_url`); every track is kept, camelCase, in
  `extra["tracks"]` because follow-ups (wav, mp4, stems, extend, persona) need its `id` as `audioId`.
- lyrics: `lyricsData[]` or `data[]` of {text, title, status, errorMessage} → `extra["text"]`, so the
  variants are saved as one .txt file; the items stay in `extra["lyrics"]`.
- wav: `audioWavUrl` / `audio_wav_url`; mp4: `videoUrl` / `video_url`; cover: `images[]`.
- stems: every non-empty `*Url` of `response`, `vocal_separation_info` or `vocal_removal_info` except
  `originUrl` (the source song, not a result; the callback docs show it pointing at cdn1.suno.ai); the
  stems are also named in `extra["stems"]`. `originData[].audio_url` (and its `extract` / `remove`
  parts for split_stem_advanced) are used only when no `*Url` key carries one, so no stem is fetched
  twice; the items stay in `extra["originData"]` for their ids (MIDI's `audioId`).
- midi: `midiData` (record) or `data{state, instruments}` (callback) → `extra["json"]`.
- style boost: `data.result` → `extra["text"]`; persona and timestamped lyrics: `data` → `extra["json"]`.

Choices where the spec is silent:
- An unknown task on generate/record-info answers code 200 with `data: null` [REAL]; the other
  record-info endpoints were not recorded and are read the same way. 404 and 422 also mean "not
  visible yet", as for Market.
- Times come as ms integers (vocal removal, midi), "YYYY-MM-DD HH:MM:SS" strings (wav, mp4, tracks;
  taken as UTC since no zone is given) or ISO 8601 (cover); all become ms.
- The timestamped-lyrics answer carries no id, so its task id is derived from its content (stable for
  the same answer) to name the saved file.
- A synchronous answer that itself reports failure raises `TaskFailedError` from `parse_created`: there
  is no task to poll and nothing to download.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kie.catalog.spec import ModelSpec
from kie.errors import TaskFailedError, ValidationError
from kie.protocol.envelope import ApiRequest, Envelope, error_for
from kie.protocol.families.base import Created
from kie.protocol.families.legacy import NOT_VISIBLE_CODES, flat_create, task_id_of
from kie.protocol.task import (
    TaskState,
    TaskStatus,
    as_float,
    as_int,
    as_text,
    epoch_ms,
    loads_maybe,
    url_list,
)

MUSIC_STATUS_PATH = "/api/v1/generate/record-info"

PENDING_WORDS = frozenset({"PENDING", "WAITING", "WAIT", "QUEUING", "QUEUEING", "0"})
SUCCESS_WORDS = frozenset({"SUCCESS", "COMPLETE", "COMPLETED", "1", "成功"})
FAILED_WORDS = frozenset({"FAIL", "FAILED", "ERROR", "2", "3"})
CALLBACK_EXCEPTION = "CALLBACK_EXCEPTION"
STAGE_PROGRESS = {"TEXT_SUCCESS": 0.33, "TEXT": 0.33, "FIRST_SUCCESS": 0.66, "FIRST": 0.66}

# Response keys ending in "Url" that name stems; any one of them marks a stem container.
STEM_KEYS = (
    "vocalUrl",
    "instrumentalUrl",
    "backingVocalsUrl",
    "drumsUrl",
    "bassUrl",
    "guitarUrl",
    "pianoUrl",
    "keyboardUrl",
    "percussionUrl",
    "stringsUrl",
    "synthUrl",
    "fxUrl",
    "brassUrl",
    "woodwindsUrl",
)
NOT_RESULTS = frozenset({"originUrl", "callbackUrl", "callBackUrl"})
_SNAKE = re.compile(r"_([a-z0-9])")


def camel(value: Any) -> Any:
    """Camelise every snake_case key, recursively: callbacks say `audio_url` where records say `audioUrl`."""
    if isinstance(value, Mapping):
        return {_camel_key(str(k)): camel(v) for k, v in value.items()}
    if isinstance(value, list):
        return [camel(v) for v in value]
    return value


def _camel_key(key: str) -> str:
    return _SNAKE.sub(lambda m: m.group(1).upper(), key) if "_" in key else key


def state_word(raw: Any) -> str | None:
    if raw is None or raw == "":
        return None
    if isinstance(raw, bool):
        return "1" if raw else "0"
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)
    return str(raw).strip().upper()


def state_of(word: str | None) -> TaskState | None:
    """The state a status word stands for; None for CALLBACK_EXCEPTION, which depends on the results."""
    if word is None or word in PENDING_WORDS:
        return TaskState.PENDING
    if word == CALLBACK_EXCEPTION:
        return None
    if word in SUCCESS_WORDS:
        return TaskState.SUCCEEDED
    if word in FAILED_WORDS or word.endswith(("_FAILED", "_ERROR")):
        return TaskState.FAILED
    # TEXT_SUCCESS, FIRST_SUCCESS, generating, and any unknown word: the task exists and has not ended.
    return TaskState.RUNNING


@dataclass
class Found:
    """Results gathered from every place a Suno answer may hold them."""

    urls: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def add(self, *urls: str) -> None:
        for url in urls:
            if url and url not in self.urls:
                self.urls.append(url)

    @property
    def anything(self) -> bool:
        return bool(self.urls) or "text" in self.extra or "json" in self.extra


def _dict_items(value: Any) -> list[Mapping[str, Any]]:
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def _tracks(container: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    listed = container.get("sunoData")
    if listed is None:
        listed = [item for item in _dict_items(container.get("data")) if "text" not in item]
    return _dict_items(listed)


def _lyrics(container: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    listed = container.get("lyricsData")
    if listed is None:
        listed = [item for item in _dict_items(container.get("data")) if "text" in item]
    return _dict_items(listed)


def lyrics_text(items: list[Mapping[str, Any]]) -> str:
    """All variants in one text file, each under its title."""
    parts = []
    for index, item in enumerate(items, start=1):
        title = as_text(item.get("title")) or f"Lyrics {index}"
        parts.append(f"{title}\n\n{as_text(item.get('text')) or ''}".rstrip())
    return "\n\n---\n\n".join(parts) + "\n"


def _stem_containers(container: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    nested = [container.get("vocalSeparationInfo"), container.get("vocalRemovalInfo")]
    candidates = [container, *[n for n in nested if isinstance(n, Mapping)]]
    return [c for c in candidates if any(k in c for k in STEM_KEYS) or "originData" in c]


def _origin_urls(items: list[Mapping[str, Any]]) -> list[str]:
    urls: list[str] = []
    for item in items:
        for part in (item, item.get("extract"), item.get("remove")):
            if isinstance(part, Mapping) and isinstance(part.get("audioUrl"), str):
                urls.append(part["audioUrl"])
    return urls


def _collect_stems(container: Mapping[str, Any], found: Found) -> None:
    for stems in _stem_containers(container):
        named = {
            k: v
            for k, v in stems.items()
            if k.endswith("Url") and k not in NOT_RESULTS and isinstance(v, str) and v
        }
        origin = _dict_items(stems.get("originData"))
        found.add(*(named.values() or _origin_urls(origin)))
        found.extra.setdefault("stems", {}).update(named)
        if origin:
            found.extra["originData"] = origin


def _collect(container: Mapping[str, Any], found: Found) -> None:
    tracks = _tracks(container)
    if tracks:
        found.extra["tracks"] = [dict(t) for t in tracks]
        found.add(*(t["audioUrl"] for t in tracks if isinstance(t.get("audioUrl"), str)))
    lyrics = _lyrics(container)
    if lyrics:
        found.extra["lyrics"] = [dict(item) for item in lyrics]
        if any(as_text(item.get("text")) for item in lyrics):
            found.extra["text"] = lyrics_text(lyrics)
    for key in ("audioWavUrl", "videoUrl"):
        if isinstance(container.get(key), str):
            found.add(container[key])
    found.add(*url_list(container.get("images")))
    _collect_stems(container, found)
    midi = container.get("midiData")
    if isinstance(midi, Mapping):
        found.extra["json"] = dict(midi)
    elif "instruments" in container:
        found.extra["json"] = {"state": container.get("state"), "instruments": container["instruments"]}


def gather(*containers: Any) -> Found:
    found = Found()
    for container in containers:
        if isinstance(container, Mapping):
            _collect(container, found)
    return found


def _failure_text(record: Mapping[str, Any], found: Found) -> str | None:
    for key in ("errorMessage", "errorMsg", "error", "failMsg"):
        text = as_text(record.get(key))
        if text:
            return text
    for item in found.extra.get("lyrics", []):
        text = as_text(item.get("errorMessage"))
        if text:
            return text
    return None


def derived_id(prefix: str, data: Any) -> str:
    digest = hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()
    return f"{prefix}-{digest[:20]}"


class SunoFamily:
    api = "suno"

    def create_request(
        self, spec: ModelSpec, values: Mapping[str, Any], callback_url: str | None
    ) -> ApiRequest:
        return flat_create(spec, values, callback_url)

    def parse_created(self, spec: ModelSpec, data: Any) -> Created:
        if not isinstance(data, Mapping):
            raise ValueError(f"create answer is not an object: {data!r}")
        if not spec.endpoint.status:
            return self.parse_synchronous(spec, data)
        task_id = task_id_of(data)
        if not task_id:
            raise ValueError(f"create answer carries no taskId: {data!r}")
        return Created(task_id)

    def parse_synchronous(self, spec: ModelSpec, data: Mapping[str, Any]) -> Created:
        """Style boost, persona and timestamped lyrics answer with the result itself: no polling."""
        record = dict(data)
        task_id = as_text(record.get("taskId")) or as_text(record.get("personaId"))
        if task_id is None:
            if "personaId" in record or spec.endpoint.create.endswith("generate-persona"):
                raise ValueError(f"persona answer carries no personaId: {data!r}")
            task_id = derived_id(spec.id.rsplit("/", 1)[-1], record)
        word = state_word(record.get("successFlag"))
        state = TaskState.SUCCEEDED if word is None else state_of(word)
        if "result" in record:
            text = as_text(record.get("result"))
            extra: dict[str, Any] = {"text": text} if text else {}
            if not text:
                state = TaskState.FAILED
        else:
            extra = {"json": record}
        if state is not TaskState.SUCCEEDED:
            fail_msg = _failure_text(record, Found())
            raise TaskFailedError(
                f"{spec.id} answered without a result ({fail_msg or word or 'no reason given'}).",
                task_id=task_id,
                fail_code=as_text(record.get("errorCode")) or word,
                fail_msg=fail_msg,
            )
        param = loads_maybe(record.get("param"))
        status = TaskStatus(
            task_id=task_id,
            state=state,
            model=spec.id,
            raw_state=word,
            credits_consumed=as_float(record.get("creditsConsumed")),
            create_time=epoch_ms(record.get("createTime")),
            input=param if isinstance(param, dict) else None,
            extra=extra,
            raw=dict(data),
        )
        return Created(task_id, status=status)

    def answers(self) -> frozenset[int]:
        return NOT_VISIBLE_CODES

    def status_request(self, spec: ModelSpec | None, task_id: str) -> ApiRequest:
        path = spec.endpoint.status if spec is not None else MUSIC_STATUS_PATH
        if not path:
            assert spec is not None
            raise ValidationError(
                f"{spec.id} is synchronous: its result came with the create answer and has no status "
                "endpoint to ask again."
            )
        return ApiRequest("GET", path, params={"taskId": task_id}, label=f"suno {path.rsplit('/v1/', 1)[-1]}")

    def not_visible(self, env: Envelope) -> bool:
        """`data: null` with code 200 is how Kie says it has no such music task [REAL]."""
        return (env.ok and env.data is None) or env.code in NOT_VISIBLE_CODES

    def parse_status(self, env: Envelope, task_id: str) -> TaskStatus:
        if not env.ok:
            raise error_for(env, task_id=task_id)
        return self.parse_record(env.data, task_id)

    def parse_record(self, data: Any, task_id: str) -> TaskStatus:
        """One record-info `data` object, whichever Suno endpoint it came from."""
        if not isinstance(data, Mapping):
            raise ValueError(f"Suno record-info data is not an object: {data!r}")
        record = camel(data)
        found = gather(loads_maybe(record.get("response")), record)
        word = state_word(next((record[k] for k in ("successFlag", "status", "state") if k in record), None))
        param = loads_maybe(record.get("param"))
        return self._status(
            record,
            found,
            word,
            task_id=str(record.get("taskId") or task_id),
            create_time=epoch_ms(record.get("createTime")),
            complete_time=epoch_ms(record.get("completeTime")),
            values=param if isinstance(param, dict) else None,
            raw=data,
        )

    def parse_callback(self, body: Mapping[str, Any]) -> TaskStatus:
        """Any Suno callback: music stages, lyrics, wav, stems, midi, mp4 and cover bodies."""
        whole = camel(body)
        data = whole.get("data") if isinstance(whole.get("data"), Mapping) else {}
        task_id = as_text(data.get("taskId")) or as_text(whole.get("taskId")) or ""
        code = as_int(whole.get("code"))
        found = gather(data)
        word = state_word(data.get("callbackType") or data.get("state"))
        if code is not None and code != 200:
            word = "ERROR"
        elif word is None:
            word = "SUCCESS"
        record = {**data, "error": data.get("error") or whole.get("msg")}
        return self._status(
            record,
            found,
            word,
            task_id=task_id,
            fail_code=str(code) if code is not None and code != 200 else None,
            raw=dict(body),
        )

    def _status(
        self,
        record: Mapping[str, Any],
        found: Found,
        word: str | None,
        *,
        task_id: str,
        fail_code: str | None = None,
        create_time: int | None = None,
        complete_time: int | None = None,
        values: dict[str, Any] | None = None,
        raw: Any = None,
    ) -> TaskStatus:
        state = state_of(word)
        if state is None:  # CALLBACK_EXCEPTION: only the callback failed if the results exist
            state = TaskState.SUCCEEDED if found.anything else TaskState.FAILED
        failed = state is TaskState.FAILED
        if failed and fail_code is None:
            fail_code = as_text(record.get("errorCode")) or word
        progress = STAGE_PROGRESS.get(word or "")
        if progress is None and state is TaskState.SUCCEEDED and "tracks" in found.extra:
            progress = 1.0
        return TaskStatus(
            task_id=task_id,
            state=state,
            raw_state=word,
            result_urls=tuple(found.urls),
            fail_code=fail_code if failed else None,
            fail_msg=(_failure_text(record, found) or f"Suno reported {word}") if failed else None,
            create_time=create_time,
            complete_time=complete_time,
            progress=progress,
            credits_consumed=as_float(record.get("creditsConsumed")),
            input=values,
            extra=found.extra,
            raw=raw,
        )
