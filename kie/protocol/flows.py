"""The submit → wait → download workflow, written once, as generators of effects.

A flow never performs IO. It yields an effect (`Send` a request, `Sleep`, `Fetch` a file into a sink)
and receives its result; the sync client (`kie.Kie`) and the async client (`kie.AsyncKie`) are two small
drivers that perform effects with `httpx.Client` or `httpx.AsyncClient`. Every rule about polling,
deadlines, grace windows, link refresh and uploads therefore exists exactly once, here.
"""

from __future__ import annotations

import dataclasses
import json
import mimetypes
import statistics
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kie.catalog.spec import ModelSpec
from kie.errors import (
    DownloadError,
    NotFoundError,
    SubmissionUnknownError,
    TaskFailedError,
    TimeoutError,
)
from kie.protocol.common import (
    UploadedFile,
    download_url_request,
    parse_download_url,
    parse_upload,
    stream_upload_request,
    unique_name,
)
from kie.protocol.envelope import ApiRequest, Envelope, require_ok
from kie.protocol.families import Created, family_for
from kie.protocol.files import FileSink, SavedFile
from kie.protocol.polling import PollClock, PollPolicy, duration_keys, next_delay, quantile_plan
from kie.protocol.task import TaskState, TaskStatus


@dataclass(frozen=True)
class Send:
    """Perform a request (with the retry rules of its kind). Result: an `Envelope`.

    Envelopes whose code is in `answers` come back as values; any other non-200 code is raised as its
    typed error, after retries where the rules allow them.
    """

    request: ApiRequest
    answers: frozenset[int] = frozenset()
    model: str | None = None
    # Called once, right before the request is first written to the socket (after every pacing
    # wait): a batch commits its intent here, so a crash while waiting leaves the job pending, not
    # unknown. Whatever it raises ends the flow before anything is sent.
    on_depart: Callable[[], None] | None = dataclasses.field(default=None, compare=False)


@dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclass(frozen=True)
class Fetch:
    """Stream `url` into `sink` without credentials. Result: a `SavedFile`; raises `FetchFailed`."""

    url: str
    sink: FileSink


class FetchFailed(Exception):
    def __init__(self, url: str, status: int | None, reason: str) -> None:
        super().__init__(reason)
        self.url = url
        self.status = status


Effect = Send | Sleep | Fetch
Flow = Generator[Effect, Any, Any]
StatusHook = Callable[[TaskStatus, int], None]

EXPIRED_STATUSES = {401, 403, 404, 410}


def submit(
    spec: ModelSpec,
    values: Mapping[str, Any],
    callback_url: str | None,
    *,
    on_depart: Callable[[], None] | None = None,
) -> Flow:
    """Create the task; return `Created` (its id, and the status when the endpoint is synchronous).

    A garbled success answer may hide a created task, so it is reported as unknown, never resent."""
    family = family_for(spec)
    request = family.create_request(spec, values, callback_url)
    # A family may read some non-200 create answers as results (Veo's 4K "processing" / "already
    # generated" 422s); every other code is raised as its typed error.
    create_answer = getattr(family, "create_answer", None)
    answers = frozenset({422}) if create_answer is not None else frozenset()
    env: Envelope = yield Send(request, answers=answers, model=spec.id, on_depart=on_depart)
    if not env.ok and create_answer is not None:
        created: Created | None = create_answer(spec, env)
        if created is not None:
            return created
    data = require_ok(env)
    try:
        return family.parse_created(spec, data)
    except ValueError as exc:
        raise SubmissionUnknownError(
            f"Kie accepted the create for {spec.id} but its answer had no task id ({exc}); the task may "
            "exist. It was not resent.",
            model=spec.id,
        ) from exc


def status_once(spec: ModelSpec | None, task_id: str) -> Flow:
    """Read a task's status once; unknown tasks raise `NotFoundError`."""
    family = family_for(spec)
    env: Envelope = yield Send(family.status_request(spec, task_id), answers=family.answers())
    if family.not_visible(env):
        raise NotFoundError(
            f"Kie has no task {task_id} ({_not_found_reason(env)}). Check the id.",
            code=env.code,
            task_id=task_id,
        )
    return family.parse_status(env, task_id)


UNSEEN_LIMIT = 3  # "no record" answers in a row, past the grace window, before a watch gives up


@dataclass(slots=True)
class Watch:
    """One task being waited for: the polling rules as plain state.

    `wait` drives one of these in a loop; the batch runner keeps thousands in one heap (a coroutine
    per task would cost about 20 kB each). Both therefore follow the same schedule, grace window and
    deadline. Times come from the caller's monotonic clock, in scaled seconds.
    """

    spec: ModelSpec | None
    task_id: str
    policy: PollPolicy
    start: float
    give_up_at: float
    deadline: float
    expected: float
    learned: PollClock | None = None
    polls: int = 0
    keys: tuple[str, ...] = ()
    plan: tuple[float, ...] = ()
    step: int = 0  # the next planned poll in `plan`
    # Answers in a row saying Kie has no record of the task. Kie sometimes says so once about a task it
    # knows ("recordInfo is null"), so past the grace window a paid task is only given up after several.
    unseen: int = 0

    @classmethod
    def begin(
        cls,
        spec: ModelSpec | None,
        task_id: str,
        *,
        policy: PollPolicy,
        now: float,
        deadline: float,
        learned: PollClock | None = None,
        elapsed: float = 0.0,
        values: Mapping[str, Any] | None = None,
    ) -> Watch:
        """Start watching; `elapsed` is how long the task has already run (a resumed batch), which
        moves the schedule on but leaves the whole deadline to this watch. `values` (the task's input)
        picks the durations learned for its options rather than for its model as a whole."""
        expected = spec.traits.typical_seconds if spec is not None else 30.0
        keys = duration_keys(spec.id, values) if spec is not None else ()
        seen = learned.durations(keys) if learned is not None else ()
        if seen:
            expected = statistics.median(seen)
        return cls(
            spec,
            task_id,
            policy,
            now - max(0.0, elapsed),
            now + deadline,
            deadline,
            expected,
            learned,
            keys=keys,
            plan=quantile_plan(policy, seen),
        )

    def delay(self, now: float) -> float:
        """Seconds until the next poll; raises `TimeoutError` once the deadline has passed.

        Each call books one planned poll, so a poll that jitter brought forward is not repeated at its
        planned time, and a resumed task skips the points it has already passed."""
        remaining = self.give_up_at - now
        if remaining <= 0:
            raise TimeoutError(
                f"Task {self.task_id} did not finish within {self.deadline:.0f} s; it may still be running "
                f"on Kie. Fetch it later with `kie task get {self.task_id}`.",
                task_id=self.task_id,
            )
        real_elapsed = (now - self.start) / (self.policy.scale or 1.0)
        while self.step < len(self.plan) and self.plan[self.step] <= real_elapsed:
            self.step += 1
        ahead = self.plan[self.step :]
        self.step += 1
        return min(next_delay(self.policy, now - self.start, self.expected, plan=ahead), remaining)

    def send(self) -> Send:
        family = family_for(self.spec)
        return Send(family.status_request(self.spec, self.task_id), answers=family.answers())

    def read(self, env: Envelope, now: float) -> TaskStatus | None:
        """The task's status, or None while Kie cannot see it yet (inside the grace window)."""
        self.polls += 1
        family = family_for(self.spec)
        if family.not_visible(env):
            self.unseen += 1
            if (
                now - self.start < self.policy.scaled(self.policy.not_visible_grace)
                or self.unseen < UNSEEN_LIMIT
            ):
                return None
            raise NotFoundError(
                f"Kie still has no record of task {self.task_id} after the grace window "
                f"({_not_found_reason(env)}).",
                code=env.code,
                task_id=self.task_id,
            )
        self.unseen = 0
        status = family.parse_status(env, self.task_id)
        if status.state is TaskState.SUCCEEDED and self.learned is not None and self.spec is not None:
            self._learn(self.learned, self.spec, status, now)
        return status

    def _learn(self, learned: PollClock, spec: ModelSpec, status: TaskStatus, now: float) -> None:
        """Record how long the task took: Kie's own `costTime` when it gives one (the measure the ledger
        keeps, free of our polling delay), else the time until we noticed. Kie echoes the input, so a
        task waited for by id alone still teaches the durations of its options."""
        keys = self.keys
        if len(keys) < 2 and status.input:
            keys = duration_keys(spec.id, status.input)
        learned.observe(keys, status.cost_time or (now - self.start) / (self.policy.scale or 1.0))


def _not_found_reason(env: Envelope) -> str:
    """Kie's own words for a missing task, unless they are a success word (Suno answers "success"
    with no data for a task it does not know)."""
    msg = (env.msg or "").strip().rstrip(".")
    return msg if msg and msg.lower() not in ("success", "ok") else "no record of it"


def poll(watch: Watch, clock: Callable[[], float]) -> Flow:
    """Ask once about a watched task; return its status (None while not visible yet)."""
    env: Envelope = yield watch.send()
    return watch.read(env, clock())


def wait(
    spec: ModelSpec | None,
    task_id: str,
    *,
    policy: PollPolicy,
    clock: Callable[[], float],
    deadline: float,
    learned: PollClock | None = None,
    poll_now: bool = False,
    on_status: StatusHook | None = None,
    values: Mapping[str, Any] | None = None,
) -> Flow:
    """Poll until the task is terminal; return the final `TaskStatus` (raise on failure or deadline).

    `values`, the task's input, lets the schedule use what was learned for its options."""
    watch = Watch.begin(
        spec, task_id, policy=policy, now=clock(), deadline=deadline, learned=learned, values=values
    )
    if not poll_now:
        yield Sleep(watch.delay(clock()))
    while True:
        status = yield from poll(watch, clock)
        if status is not None:
            if on_status is not None:
                on_status(status, watch.polls)
            if status.state is TaskState.SUCCEEDED:
                return status
            if status.state is TaskState.FAILED:
                raise task_failed(status)
        yield Sleep(watch.delay(clock()))


def task_failed(status: TaskStatus) -> TaskFailedError:
    detail = status.fail_msg or "no reason given"
    code = f" (failCode {status.fail_code})" if status.fail_code else ""
    return TaskFailedError(
        f"Task {status.task_id} failed on Kie{code}: {detail}. Failed tasks are not charged.",
        task_id=status.task_id,
        fail_code=status.fail_code,
        fail_msg=status.fail_msg,
    )


def download(status: TaskStatus, directory: Path, stem: str) -> Flow:
    """Save every result URL as `<stem>-<n>.<ext>`; refresh expired links through `download-url`.

    Text results (lyrics, style descriptions: `extra["text"]` or `extra["json"]`) are saved as files too,
    so every task leaves something on disk."""
    if not status.result_urls and ("text" in status.extra or "json" in status.extra):
        return [save_text(status, directory, f"{stem}-1")]
    if not status.result_urls:
        raise DownloadError(
            f"Task {status.task_id} succeeded but returned no result URL.", url="", task_id=status.task_id
        )
    saved: list[SavedFile] = []
    for index, url in enumerate(status.result_urls, start=1):
        name = f"{stem}-{index}"
        try:
            saved.append((yield Fetch(url, FileSink(directory, name, url))))
            continue
        except FetchFailed as exc:
            if exc.status not in EXPIRED_STATUSES:
                raise DownloadError(
                    f"Could not download result {index} of task {status.task_id}: {exc}. The task is paid "
                    f"for; retry with `kie task get {status.task_id}`.",
                    url=url,
                    task_id=status.task_id,
                ) from exc
        env: Envelope = yield Send(download_url_request(url))
        fresh = parse_download_url(require_ok(env, task_id=status.task_id))
        try:
            saved.append((yield Fetch(fresh, FileSink(directory, name, url))))
        except FetchFailed as exc:
            raise DownloadError(
                f"Result {index} of task {status.task_id} expired and its refreshed link failed too ({exc}).",
                url=url,
                task_id=status.task_id,
            ) from exc
    return saved


def save_text(status: TaskStatus, directory: Path, stem: str) -> SavedFile:
    is_text = "text" in status.extra
    data = str(status.extra["text"]) if is_text else json.dumps(status.extra["json"], indent=2)
    sink = FileSink(directory, stem, "")
    sink.start("text/plain" if is_text else "application/json", None)
    sink.write(data.encode("utf-8"))
    return sink.finish()


def upload(content: Path | bytes, *, upload_path: str, mime_type: str | None = None) -> Flow:
    """Upload a local file or bytes under a unique name; return the `UploadedFile`."""
    if isinstance(content, Path):
        guessed = mimetypes.guess_type(content.name)[0]
        mime = mime_type or guessed or "application/octet-stream"
        ext = content.suffix.lstrip(".") or (mimetypes.guess_extension(mime) or ".bin").lstrip(".")
        handle = content.open("rb")
        try:
            env: Envelope = yield Send(stream_upload_request(handle, unique_name(ext), upload_path, mime))
        finally:
            handle.close()
    else:
        mime = mime_type or "application/octet-stream"
        ext = (mimetypes.guess_extension(mime) or ".bin").lstrip(".")
        env = yield Send(stream_upload_request(bytes(content), unique_name(ext), upload_path, mime))
    return parse_upload(env)


def _local(value: Any) -> Path | bytes | None:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, Path):
        return value
    if isinstance(value, str) and not value.startswith(("http://", "https://", "data:")):
        return Path(value)
    return None


def _media_items(spec: ModelSpec, values: Mapping[str, Any]) -> list[Any]:
    items: list[Any] = []
    for name, field in spec.fields.items():
        if field.media is not None and name in values:
            value = values[name]
            items.extend(value if isinstance(value, list) else [value])
    return items


def has_local_files(spec: ModelSpec, values: Mapping[str, Any]) -> bool:
    """Whether `upload_inputs` has anything to upload (a batch skips the step, and its ledger write,
    for rows that only name URLs)."""
    return any(_local(item) is not None for item in _media_items(spec, values))


def upload_inputs(spec: ModelSpec, values: Mapping[str, Any], *, upload_path: str) -> Flow:
    """Replace local files in media fields with the `downloadUrl` of their upload."""
    result = dict(values)
    for name, field in spec.fields.items():
        if field.media is None or name not in result:
            continue
        value = result[name]
        items = value if isinstance(value, list) else [value]
        replaced = []
        for item in items:
            local = _local(item)
            if local is None:
                replaced.append(item)
                continue
            uploaded: UploadedFile = yield from upload(local, upload_path=upload_path)
            replaced.append(uploaded.download_url)
        result[name] = replaced if isinstance(value, list) else replaced[0]
    return result


__all__ = [
    "Effect",
    "Fetch",
    "FetchFailed",
    "Flow",
    "Send",
    "Sleep",
    "download",
    "has_local_files",
    "save_text",
    "status_once",
    "submit",
    "task_failed",
    "upload",
    "upload_inputs",
    "wait",
]
