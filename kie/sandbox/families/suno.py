"""The Suno family in the sandbox: every create path of the catalogue's `suno` models, the seven
record-info endpoints, the three synchronous helpers, and the multi-stage music callbacks.

What follows recorded real traffic (kie-api.md §4.8) [REAL]:
- every asynchronous create without `callBackUrl` answers HTTP 200 `{"code":422,"msg":"Please enter
  callBackUrl.","data":null}`; any URL is accepted (the engine only delivers to loopback), so the
  client's documented placeholder works;
- a create answers `{"code":200,"msg":"success","data":{"taskId":…}}`, with no `recordId`;
- an unknown task on record-info answers `{"code":200,"msg":"success","data":null}` (recorded for
  generate/record-info; the other record-info endpoints answer the same way here);
- wav, mp4, midi and vocal removal with a bogus task or audio id answer `{"code":422,"msg":"Record
  does not exist","data":null}` before anything is charged; extend with a bogus id still gets a
  taskId (the task then fails here with CREATE_TASK_FAILED);
- style boost answers at once with `successFlag: "成功"` and `creditsConsumed` 0.4.

What follows the docs (§4.8, §5, the per-endpoint pages), each shape from its own page: music status
strings PENDING → TEXT_SUCCESS → FIRST_SUCCESS (first and second half of the generating phase) →
SUCCESS; lyrics/wav/mp4/stems status strings; midi and cover `successFlag` ints; times as ms (stems,
midi), "YYYY-MM-DD HH:MM:SS" UTC strings (wav, mp4, tracks, style boost) or ISO 8601 (cover); stems
under `response.*Url` with `instrumentalUrl` null for split_stem; the cover endpoint's repeat answer
(code 400 carrying the existing taskId); music callbacks text → first → complete, or one `error` body.

Choices where nothing is recorded (the parser accepts the alternatives):
- CALLBACK_EXCEPTION is shown for a finished music task while its latest callback delivery failed;
- a planned failure whose `fail_code` is a Suno status name (e.g. SENSITIVE_WORD_ERROR) is shown with
  that name and errorCode 400; a numeric `fail_code` is shown as the errorCode with the endpoint's
  generic failure status;
- a known task that has not finished yet is refused with 422 "record status is not success" (a 422
  message §8.1 lists, trigger unrecorded); replace-section, extend's sibling on the music
  record-info, defers a bad reference like extend does;
- MIDI needs a finished vocal-separation task (the docs' prerequisite); cover, persona and timestamped
  lyrics need a finished music task; upload URLs are not fetched, so they always succeed;
- which paths need `callBackUrl` follows the catalogue's `requires_callback` (all asynchronous ones);
- the stage callback messages other than "All generated successfully.", the `modelName` spelling
  (`chirp-v5`, …) and the record `type` of operations other than GENERATE (the path's last part in
  capitals: EXTEND, UPLOAD_COVER, …) are not documented and are only plausible; `operationType` is
  given for the four operations S-HAR's types name;
- each audioId makes one persona; a second one is a 422.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timezone
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kie import catalog
from kie.catalog.spec import ModelSpec
from kie.errors import KieError
from kie.protocol.families.suno import STEM_KEYS  # the documented stem fields, one list for both sides
from kie.sandbox.engine import Engine
from kie.sandbox.families.legacy import admit, clock, status_gate
from kie.sandbox.http import envelope, public_url
from kie.sandbox.media import duration_of
from kie.sandbox.state import Fault, SandboxState, SandboxTask, StoredFile
from kie.sandbox.tasks import Admitted, find_task, flat_values, launch, legacy_spec

MUSIC_STATUS = "/api/v1/generate/record-info"
LYRICS_STATUS = "/api/v1/lyrics/record-info"
WAV_STATUS = "/api/v1/wav/record-info"
STEMS_STATUS = "/api/v1/vocal-removal/record-info"
MIDI_STATUS = "/api/v1/midi/record-info"
MP4_STATUS = "/api/v1/mp4/record-info"
COVER_STATUS = "/api/v1/suno/cover/record-info"
STEMS_CREATE = "/api/v1/vocal-removal/generate"
DEFAULTS: dict[str, dict[str, Any]] = {STEMS_CREATE: {"type": "separate_vocal"}}

NO_CALLBACK = "Please enter callBackUrl."
NO_RECORD = "Record does not exist"
NOT_FINISHED = "record status is not success"
NAMED_FAILURES = frozenset(
    {
        "CREATE_TASK_FAILED",
        "GENERATE_AUDIO_FAILED",
        "GENERATE_LYRICS_FAILED",
        "GENERATE_WAV_FAILED",
        "GENERATE_MP4_FAILED",
        "GENERATE_COVER_FAILED",
        "SENSITIVE_WORD_ERROR",
    }
)
DEFAULT_FAILURE = {
    MUSIC_STATUS: "GENERATE_AUDIO_FAILED",
    LYRICS_STATUS: "GENERATE_LYRICS_FAILED",
    WAV_STATUS: "GENERATE_WAV_FAILED",
    STEMS_STATUS: "GENERATE_AUDIO_FAILED",
    MP4_STATUS: "GENERATE_MP4_FAILED",
    MIDI_STATUS: "GENERATE_MIDI_FAILED",
    COVER_STATUS: "GENERATE_COVER_FAILED",
}
OPERATIONS = {
    "/api/v1/generate": ("GENERATE", "generate"),
    "/api/v1/generate/extend": ("EXTEND", "extend"),
    "/api/v1/generate/upload-cover": ("UPLOAD_COVER", "upload_cover"),
    "/api/v1/generate/upload-extend": ("UPLOAD_EXTEND", "upload_extend"),
}
SEPARATE_VOCAL = (("vocalUrl", "Vocals"), ("instrumentalUrl", "Instrumental"))
SPLIT_STEM = (
    ("vocalUrl", "Vocals"),
    ("backingVocalsUrl", "Backing Vocals"),
    ("drumsUrl", "Drums"),
    ("bassUrl", "Bass"),
    ("guitarUrl", "Guitar"),
    ("keyboardUrl", "Keyboard"),
    ("stringsUrl", "Strings"),
    ("brassUrl", "Brass"),
    ("woodwindsUrl", "Woodwinds"),
    ("percussionUrl", "Percussion"),
    ("synthUrl", "Synth"),
    ("fxUrl", "FX"),
)
STAGE_MESSAGES = {
    "text": "Text generated successfully.",
    "first": "First track generated successfully.",
    "complete": "All generated successfully.",
}

Handler = Callable[[Request], Awaitable[Response]]


def endpoint_name(path: str) -> str:
    """The request counter's name: the path after /api/v1/ (`generate`, `style/generate`, …)."""
    return path.removeprefix("/api/v1/")


def iso_text(ms: int | None) -> str | None:
    if ms is None:
        return None
    moment = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_ms() -> int:
    return int(time.time() * 1000)


def snake(key: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in key)


def seeded(task_id: str, salt: str) -> int:
    return int(hashlib.sha256(f"{task_id}:{salt}".encode()).hexdigest()[:8], 16)


def failure(task: SandboxTask, status_path: str) -> tuple[str, int, str]:
    """(status word, errorCode, errorMessage) of a failed task."""
    code = task.fail_code or "500"
    word = code if code in NAMED_FAILURES else DEFAULT_FAILURE[status_path]
    error_code = int(code) if code.isdigit() else 400
    return word, error_code, task.fail_msg or word


def callback_code(task: SandboxTask) -> int:
    code = task.fail_code or "500"
    return int(code) if code.isdigit() else 400


def lyric_text(prompt: str, index: int) -> tuple[str, str]:
    words = prompt.split()[:3] or ["Sandbox"]
    title = " ".join(w.capitalize() for w in words)
    text = (
        f"[Verse]\n{prompt}\nWe sing it under a sandbox sky\n\n"
        f"[Chorus]\n{title}, {title}\nTake {index + 1}, and one more time"
    )
    return title, text


def midi_data(task_id: str) -> dict[str, Any]:
    base = seeded(task_id, "midi")
    notes = [
        {"pitch": 36 + (base + n) % 24, "start": n * 0.25, "end": n * 0.25 + 0.2, "velocity": 1}
        for n in range(8)
    ]
    drums = [
        {"pitch": 36 + (n % 2) * 2, "start": n * 0.5, "end": n * 0.5 + 0.1, "velocity": 1} for n in range(4)
    ]
    return {
        "state": "complete",
        "instruments": [
            {"name": "Drums", "notes": drums},
            {"name": "Electric Bass (finger)", "notes": notes},
        ],
    }


class SunoSandbox:
    api = "suno"

    def __init__(self, state: SandboxState, engine: Engine) -> None:
        self.state = state
        self.engine = engine
        specs = [s for s in catalog.all_models() if s.endpoint.api == "suno"]
        self.create_paths = sorted({s.endpoint.create for s in specs})
        self.status_paths = sorted({s.endpoint.status for s in specs if s.endpoint.status})
        self.sync_paths = frozenset(s.endpoint.create for s in specs if not s.endpoint.status)
        self.callback_paths = frozenset(s.endpoint.create for s in specs if s.endpoint.requires_callback)
        self.fixed_choices: dict[str, dict[str, list[Any]]] = {}
        for spec in specs:
            for key, value in spec.endpoint.fixed.items():
                self.fixed_choices.setdefault(spec.endpoint.create, {}).setdefault(key, []).append(value)
        self.covers: dict[str, str] = {}
        self.personas: dict[str, str] = {}

    def routes(self) -> list[Route]:
        routes = [Route(p, self._bind(self.create, p), methods=["POST"]) for p in self.create_paths]
        routes += [Route(p, self._bind(self.record_info, p), methods=["GET"]) for p in self.status_paths]
        return routes

    @staticmethod
    def _bind(method: Callable[[Request, str], Awaitable[Response]], path: str) -> Handler:
        async def handler(request: Request) -> Response:
            return await method(request, path)

        return handler

    # -- create -----------------------------------------------------------------------------------
    async def create(self, request: Request, path: str) -> Response:
        state = self.state
        checked = await admit(state, request, endpoint_name(path))
        if isinstance(checked, Response):
            return checked
        admitted, body = checked
        callback = body.get("callBackUrl")
        if path in self.callback_paths and not (isinstance(callback, str) and callback.strip()):
            return envelope(state, 422, NO_CALLBACK)
        spec = legacy_spec("suno", path, body, DEFAULTS.get(path))
        if spec is None:
            return envelope(state, 422, self._unsupported(path, body))
        values = flat_values(spec, body)
        if path in self.sync_paths:
            return self.answer_synchronous(admitted, spec, values)
        refused, deferred = self.check_references(spec, values)
        if refused is not None:
            return refused
        task = launch(
            state, self.engine, request, admitted, spec=spec, body=body, values=values, callback_url=callback
        )
        if not isinstance(task, SandboxTask):
            return task
        self.prepare(task, spec, values, public_url(request, state.config.public_url))
        if deferred is not None and task.fail_planned is None:
            task.fail_planned = Fault(
                "generation", "fail_generation", fail_code="CREATE_TASK_FAILED", fail_msg=deferred
            )
        return envelope(state, 200, "success", {"taskId": task.task_id})

    def _unsupported(self, path: str, body: Mapping[str, Any]) -> str:
        choices = self.fixed_choices.get(path, {})
        for key, allowed in choices.items():
            if body.get(key, DEFAULTS.get(path, {}).get(key)) not in allowed:
                shown = ", ".join(str(a) for a in allowed)
                return f"{key} {body.get(key)!r} is not supported; use one of {shown}"
        return "The request is not supported"

    def _task(self, task_id: Any, status_path: str) -> SandboxTask | None:
        task = find_task(self.state, task_id if isinstance(task_id, str) else None, "suno")
        if task is None or self._ensure(task).extra["status_path"] != status_path:
            return None
        return task

    def _ensure(self, task: SandboxTask) -> SandboxTask:
        """A task whose create answer was cut (the drop_after_create fault) exists but missed `prepare`."""
        if "status_path" not in task.extra:
            self.prepare(task, catalog.get(task.model), task.input, self.state.config.public_url or "")
        return task

    def _track_owner(self, audio_id: Any, status_path: str = MUSIC_STATUS) -> SandboxTask | None:
        """The task whose tracks (or stems, for STEMS_STATUS) include `audio_id`."""
        if not isinstance(audio_id, str):
            return None
        with self.state.lock:
            tasks = [t for t in self.state.tasks.values() if t.api == "suno"]
        return next(
            (
                t
                for t in map(self._ensure, tasks)
                if t.extra["status_path"] == status_path and audio_id in t.extra.get("track_ids", ())
            ),
            None,
        )

    def _finished_track(
        self, task_id: Any, audio_id: Any, status_path: str = MUSIC_STATUS
    ) -> tuple[SandboxTask | None, str | None]:
        """The finished task holding `audio_id` (a track or a stem), or the 422 message why not."""
        task = self._task(task_id, status_path)
        ids = task.extra.get("track_ids", []) if task is not None else []
        if task is None or (audio_id is not None and audio_id not in ids):
            return None, NO_RECORD
        if task.state != "success":
            return None, NOT_FINISHED
        return task, None

    def check_references(
        self, spec: ModelSpec, values: Mapping[str, Any]
    ) -> tuple[Response | None, str | None]:
        """(a 422/400 answer, or the reason a task must fail later) for follow-ups on earlier tasks."""
        path = spec.endpoint.create
        if path in ("/api/v1/wav/generate", "/api/v1/mp4/generate", STEMS_CREATE):
            _, problem = self._finished_track(values.get("taskId"), values.get("audioId"))
        elif path == "/api/v1/midi/generate":
            _, problem = self._finished_track(values.get("taskId"), values.get("audioId"), STEMS_STATUS)
        elif path == "/api/v1/suno/cover/generate":
            return self._check_cover(values.get("taskId")), None
        elif path == "/api/v1/generate/extend":
            owner = self._track_owner(values.get("audioId"))
            ok = owner is not None and owner.state == "success"
            return None, None if ok else f"audioId {values.get('audioId')} does not exist"
        elif path == "/api/v1/generate/replace-section":
            task, _ = self._finished_track(values.get("taskId"), values.get("audioId"))
            return None, None if task is not None else "taskId/audioId is not a finished music track"
        else:
            problem = None
        return (envelope(self.state, 422, problem) if problem else None), None

    def _check_cover(self, task_id: Any) -> Response | None:
        _, problem = self._finished_track(task_id, None)
        if problem:
            return envelope(self.state, 422, problem)
        existing = self.covers.get(str(task_id))
        if existing is not None:
            return envelope(
                self.state,
                400,
                f"A cover was already generated for this task: {existing}",
                {"taskId": existing},
            )
        return None

    def prepare(self, task: SandboxTask, spec: ModelSpec, values: Mapping[str, Any], public: str) -> None:
        """Family data the record views need from the start (track ids exist before the audio)."""
        extra = task.extra
        extra["status_path"] = spec.endpoint.status
        extra["public"] = public
        if spec.endpoint.status in (MUSIC_STATUS, STEMS_STATUS):
            extra["track_ids"] = [str(uuid.uuid4()) for _ in range(spec.outputs.count)]
        source = self._track_owner(values.get("audioId"))
        if source is not None and spec.endpoint.status != MIDI_STATUS:
            extra["music_index"] = source.extra["track_ids"].index(values["audioId"])
        if spec.endpoint.create == "/api/v1/suno/cover/generate":
            self.covers[str(values.get("taskId"))] = task.task_id

    # -- synchronous helpers ----------------------------------------------------------------------
    def answer_synchronous(self, admitted: Admitted, spec: ModelSpec, values: Mapping[str, Any]) -> Response:
        """Style boost, persona and timestamped lyrics: validated, charged and answered at once."""
        state = self.state
        try:
            checked = catalog.validate(spec, values, allow_unknown=True, allow_local_files=False)
        except KieError as exc:
            return envelope(state, 422, str(exc))
        path = spec.endpoint.create
        if path != "/api/v1/style/generate":
            _, problem = self._finished_track(values.get("taskId"), values.get("audioId"))
            if problem:
                return envelope(state, 422, problem)
            if path.endswith("generate-persona") and values.get("audioId") in self.personas:
                return envelope(state, 422, "A persona was already generated for this audioId")
        est = catalog.estimate(spec, checked.input, overrides={})
        price = est.credits_each if est.credits_each is not None else state.config.unknown_price_credits
        if state.available() < price:
            return envelope(state, 402, "Credits insufficient. Please top up and try again.")
        task = self._finished_task(spec, admitted, values, price)
        if path == "/api/v1/style/generate":
            return envelope(state, 200, "success", self.style_boost(task, values, price))
        if path.endswith("generate-persona"):
            persona_id = secrets.token_hex(16)
            self.personas[str(values.get("audioId"))] = persona_id
            data = {
                "personaId": persona_id,
                "name": values.get("name"),
                "description": values.get("description"),
            }
            return envelope(state, 200, "success", data)
        return envelope(state, 200, "success", self.timestamped_lyrics(values))

    def _finished_task(
        self, spec: ModelSpec, admitted: Admitted, values: Mapping[str, Any], price: float
    ) -> SandboxTask:
        created = self.state.now_ms()
        task = SandboxTask(
            task_id=self.state.new_task_id(),
            model=spec.id,
            api="suno",
            key_id=admitted.key_id,
            request=dict(values),
            input=dict(values),
            callback_url=None,
            create_time=created,
            created_at=self.state.now(),
            state="success",
            cost_time=1,
            complete_time=created,
            credits_consumed=price,
        )
        self.state.add_task(task)
        self.state.settle(task, price)
        return task

    def style_boost(self, task: SandboxTask, values: Mapping[str, Any], price: float) -> dict[str, Any]:
        content = str(values.get("content") or "")
        result = (
            f"{content.strip().rstrip('.')}, with a clear verse-chorus arc, warm analog textures, a steady "
            "groove that builds into a wide, memorable hook, and polished modern production."
        )
        return {
            "taskId": task.task_id,
            # As recorded: `param` is the plain content string and `createTime` integer milliseconds.
            "param": content,
            "result": result,
            "creditsConsumed": price,
            "creditsRemaining": round(self.state.balance, 2),
            "successFlag": "成功",
            "errorCode": None,
            "errorMsg": None,
            "createTime": task.create_time,
        }

    def timestamped_lyrics(self, values: Mapping[str, Any]) -> dict[str, Any]:
        owner = self._track_owner(values.get("audioId"))
        words = (
            []
            if owner is None or owner.input.get("instrumental")
            else str(owner.input.get("prompt", "")).split()
        )
        aligned = [
            {
                "word": word,
                "success": True,
                "startS": round(1.0 + i * 0.4, 2),
                "endS": round(1.35 + i * 0.4, 2),
                "palign": 0,
            }
            for i, word in enumerate(words[:64])
        ]
        return {
            "alignedWords": aligned,
            "waveformData": [0, 0.5, 1, 0.75, 0.25],
            "hootCer": 0.38,
            "isStreamed": False,
        }

    # -- record-info ------------------------------------------------------------------------------
    async def record_info(self, request: Request, path: str) -> Response:
        task_id = await status_gate(self.state, request, endpoint_name(path))
        if isinstance(task_id, Response):
            return task_id
        task = self._task(task_id, path)
        return envelope(self.state, 200, "success", None if task is None else self.record(task))

    def record(self, task: SandboxTask) -> dict[str, Any]:
        path = self._ensure(task).extra["status_path"]
        view = {
            MUSIC_STATUS: self.music_record,
            LYRICS_STATUS: self.lyrics_record,
            WAV_STATUS: self.wav_record,
            MP4_STATUS: self.mp4_record,
            STEMS_STATUS: self.stems_record,
            MIDI_STATUS: self.midi_record,
            COVER_STATUS: self.cover_record,
        }[path]
        return view(task)

    def _word(self, task: SandboxTask) -> str:
        """The status string: PENDING, the music stages, SUCCESS (or CALLBACK_EXCEPTION), or the failure."""
        path = task.extra["status_path"]
        if task.state == "fail":
            return failure(task, path)[0]
        if task.state == "success":
            return "CALLBACK_EXCEPTION" if path == MUSIC_STATUS and self.callback_failing(task) else "SUCCESS"
        if task.state == "generating" and path == MUSIC_STATUS:
            started = next((t for s, t in reversed(task.history) if s == "generating"), self.state.now())
            half = (self.state.now() - started) >= task.generate_seconds / 2
            return "FIRST_SUCCESS" if half else "TEXT_SUCCESS"
        return "PENDING"

    def callback_failing(self, task: SandboxTask) -> bool:
        with self.state.lock:
            attempts = [c for c in self.state.callbacks if c.task_id == task.task_id and c.attempt > 0]
        if not attempts:
            return False
        last = attempts[-1].status
        return last is None or not 200 <= last < 300

    def _errors(self, task: SandboxTask) -> tuple[int | None, str | None]:
        if task.state != "fail":
            return None, None
        _, code, message = failure(task, task.extra["status_path"])
        return code, message

    def _param(self, task: SandboxTask) -> str:
        body = {k: v for k, v in task.request.items() if k not in ("callBackUrl", "calBackUrl")}
        return json.dumps(body, ensure_ascii=False, separators=(",", ":"))

    def music_record(self, task: SandboxTask) -> dict[str, Any]:
        word = self._word(task)
        code, message = self._errors(task)
        type_name, operation = OPERATIONS.get(
            self._create_path(task),
            (self._create_path(task).rsplit("/", 1)[-1].upper().replace("-", "_"), None),
        )
        tracks = None if word == "PENDING" or task.state == "fail" else self.tracks(task)
        data: dict[str, Any] = {
            "taskId": task.task_id,
            "parentMusicId": str(task.input.get("audioId") or ""),
            "param": self._param(task),
            "response": None if tracks is None else {"taskId": task.task_id, "sunoData": tracks},
            "status": word,
            "type": type_name,
            "errorCode": code,
            "errorMessage": message,
        }
        if operation is not None:
            data["operationType"] = operation
        return data

    def _create_path(self, task: SandboxTask) -> str:
        return catalog.get(task.model).endpoint.create

    def tracks(self, task: SandboxTask, *, callback: bool = False) -> list[dict[str, Any]]:
        done = task.state == "success"
        images = self.track_images(task) if done else []
        version = str(task.input.get("model") or task.request.get("model") or "v5")
        seconds = round(min(duration_of(task.input, 8.0), 240.0), 2)
        tracks = []
        for index, track_id in enumerate(task.extra["track_ids"]):
            audio = task.result_urls[index] if done and index < len(task.result_urls) else ""
            image = images[index] if index < len(images) else ""
            track: dict[str, Any] = {
                "id": track_id,
                "audioUrl": audio,
                "streamAudioUrl": audio,
                "imageUrl": image,
                "prompt": str(task.input.get("prompt") or ""),
                "modelName": "chirp-" + version.lower().replace("_", "-"),
                "title": str(task.input.get("title") or "Sandbox Song"),
                "tags": str(task.input.get("style") or task.input.get("tags") or ""),
                "createTime": clock(task.create_time),
                "duration": seconds if audio else None,
            }
            if callback:
                track = self._callback_track(track)
            tracks.append(track)
        return tracks

    @staticmethod
    def _callback_track(track: Mapping[str, Any]) -> dict[str, Any]:
        """The callback spelling: snake_case, plus the `source_*` copies of each URL."""
        out: dict[str, Any] = {}
        for key, value in track.items():
            if key in ("createTime",):
                out[key] = value
                continue
            out[snake(key)] = value
            if key in ("audioUrl", "streamAudioUrl", "imageUrl"):
                out["source_" + snake(key)] = value
        return out

    def track_images(self, task: SandboxTask) -> list[str]:
        """One cover image per track, registered once, rendered on first download like any result."""
        images: list[str] | None = task.extra.get("images")
        if images is not None:
            return images
        config = self.state.config
        now = self.state.now()
        images = []
        for index in range(len(task.extra["track_ids"])):
            path = f"r/{task.task_id}/cover-{index}.jpeg"
            self.state.store(
                path,
                StoredFile(
                    content_type="",
                    created_at=now,
                    expires_at=now + config.scaled(config.url_ttl),
                    retained_until=now + config.scaled(config.retention),
                    recipe=(task.model, "image", "jpeg", dict(task.input), 100 + index),
                    task_id=task.task_id,
                ),
            )
            images.append(f"{task.extra['public']}/files/{path}")
        task.extra["images"] = images
        return images

    def lyrics(self, task: SandboxTask) -> list[dict[str, Any]]:
        prompt = str(task.input.get("prompt") or "")
        items = []
        for index in range(catalog.get(task.model).outputs.count):
            title, text = lyric_text(prompt, index)
            items.append({"text": text, "title": title, "status": "complete", "errorMessage": ""})
        return items

    def lyrics_record(self, task: SandboxTask) -> dict[str, Any]:
        code, message = self._errors(task)
        done = task.state == "success"
        return {
            "taskId": task.task_id,
            "param": self._param(task),
            "response": {"taskId": task.task_id, "lyricsData": self.lyrics(task)} if done else None,
            "status": self._word(task),
            "type": "LYRICS",
            "errorCode": code,
            "errorMessage": message,
        }

    def _single_file_record(
        self, task: SandboxTask, key: str, flag: Any, times: Callable[[int | None], Any]
    ) -> dict[str, Any]:
        code, message = self._errors(task)
        done = task.state == "success"
        return {
            "taskId": task.task_id,
            "musicId": task.input.get("audioId"),
            "callbackUrl": task.callback_url,
            "musicIndex": task.extra.get("music_index", 0),
            "completeTime": times(task.complete_time if task.terminal else None),
            "response": {key: task.result_urls[0] if task.result_urls else None} if done else None,
            "successFlag": flag,
            "createTime": times(task.create_time),
            "errorCode": code,
            "errorMessage": message,
        }

    def wav_record(self, task: SandboxTask) -> dict[str, Any]:
        return self._single_file_record(task, "audioWavUrl", self._word(task), clock)

    def mp4_record(self, task: SandboxTask) -> dict[str, Any]:
        return self._single_file_record(task, "videoUrl", self._word(task), clock)

    def stem_layout(self, task: SandboxTask) -> tuple[tuple[str, str], ...]:
        return SPLIT_STEM if task.model == "suno/split-stem" else SEPARATE_VOCAL

    def stems(self, task: SandboxTask) -> dict[str, str]:
        return {key: url for (key, _), url in zip(self.stem_layout(task), task.result_urls, strict=False)}

    def stems_record(self, task: SandboxTask) -> dict[str, Any]:
        code, message = self._errors(task)
        response = None
        if task.state == "success":
            stems = self.stems(task)
            seconds = round(min(duration_of(task.input, 8.0), 240.0), 2)
            origin = [
                {"duration": seconds, "audio_url": url, "stem_type_group_name": name, "id": stem_id}
                for (key, name), stem_id, url in zip(
                    self.stem_layout(task), task.extra["track_ids"], stems.values(), strict=False
                )
            ]
            response = {"originUrl": None, "originData": origin, **{k: stems.get(k) for k in STEM_KEYS}}
        return {
            "taskId": task.task_id,
            "musicId": task.input.get("audioId"),
            "callbackUrl": task.callback_url,
            "musicIndex": task.extra.get("music_index", 0),
            "completeTime": task.complete_time if task.terminal else None,
            "response": response,
            "successFlag": self._word(task),
            "createTime": task.create_time,
            "errorCode": code,
            "errorMessage": message,
        }

    def flag(self, task: SandboxTask) -> int:
        """midi and cover: 0 pending, 1 success, 2 task not created, 3 generation failed."""
        if task.state == "success":
            return 1
        if task.state == "fail":
            return 2 if failure(task, task.extra["status_path"])[0] == "CREATE_TASK_FAILED" else 3
        return 0

    def midi_record(self, task: SandboxTask) -> dict[str, Any]:
        code, message = self._errors(task)
        return {
            "taskId": task.task_id,
            "recordTaskId": -1,
            "audioId": task.input.get("audioId"),
            "callbackUrl": task.callback_url,
            "completeTime": task.complete_time if task.terminal else None,
            "midiData": midi_data(task.task_id) if task.state == "success" else None,
            "successFlag": self.flag(task),
            "createTime": task.create_time,
            "errorCode": code,
            "errorMessage": message,
        }

    def cover_record(self, task: SandboxTask) -> dict[str, Any]:
        code, message = self._errors(task)
        done = task.state == "success"
        return {
            "taskId": task.task_id,
            "parentTaskId": task.input.get("taskId"),
            "callbackUrl": task.callback_url,
            "completeTime": iso_text(task.complete_time if task.terminal else None),
            "response": {"images": list(task.result_urls)} if done else None,
            "successFlag": self.flag(task),
            "createTime": iso_text(task.create_time),
            "errorCode": 200 if done else code,
            "errorMessage": "" if done else message,
        }

    # -- callbacks --------------------------------------------------------------------------------
    def callback_bodies(self, task: SandboxTask) -> list[dict[str, Any]]:
        path = self._ensure(task).extra["status_path"]
        if task.state != "success":
            return [self.failure_callback(task, path)]
        if path == MUSIC_STATUS:
            return [self.stage_callback(task, stage) for stage in ("text", "first", "complete")]
        if path == LYRICS_STATUS:
            items = [
                {"text": i["text"], "title": i["title"], "status": i["status"], "error_message": ""}
                for i in self.lyrics(task)
            ]
            data = {"callbackType": "complete", "task_id": task.task_id, "data": items}
            return [{"code": 200, "msg": "All generated successfully.", "data": data}]
        return [self.result_callback(task, path)]

    def stage_callback(self, task: SandboxTask, stage: str) -> dict[str, Any]:
        tracks = self.tracks(task, callback=True)
        keep = {"complete": len(tracks), "first": 1, "text": 0}[stage]
        for index, track in enumerate(tracks):
            if index >= keep:
                for key in ("audio_url", "source_audio_url", "stream_audio_url", "source_stream_audio_url"):
                    track[key] = ""
        data = {"callbackType": stage, "task_id": task.task_id, "data": tracks}
        return {"code": 200, "msg": STAGE_MESSAGES[stage], "data": data}

    def result_callback(self, task: SandboxTask, path: str) -> dict[str, Any]:
        url = task.result_urls[0] if task.result_urls else None
        if path == WAV_STATUS:
            return {"code": 200, "msg": "success", "data": {"task_id": task.task_id, "audioWavUrl": url}}
        data: dict[str, Any]
        if path == MP4_STATUS:
            data = {"task_id": task.task_id, "video_url": url}
            return {"code": 200, "msg": "MP4 generated successfully.", "data": data}
        if path == STEMS_STATUS:
            info = {"origin_url": "", **{snake(k): v for k, v in self.stems(task).items()}}
            data = {"task_id": task.task_id, "vocal_separation_info": info}
            return {"code": 200, "msg": "vocal separation generated successfully.", "data": data}
        if path == MIDI_STATUS:
            return {
                "code": 200,
                "msg": "success",
                "data": {"taskId": task.task_id, **midi_data(task.task_id)},
            }
        return {
            "code": 200,
            "msg": "success",
            "data": {"taskId": task.task_id, "images": list(task.result_urls)},
        }

    def failure_callback(self, task: SandboxTask, path: str) -> dict[str, Any]:
        message = failure(task, path)[2]
        if path in (MUSIC_STATUS, LYRICS_STATUS):
            data: dict[str, Any] = {"callbackType": "error", "task_id": task.task_id, "data": None}
        elif path in (MIDI_STATUS, COVER_STATUS):
            data = {"taskId": task.task_id}
        else:
            data = {"task_id": task.task_id}
        return {"code": callback_code(task), "msg": message, "data": data}
