"""What Kie's legacy API families share (4o Image, Flux Kontext, Midjourney, Veo, Runway, Aleph, Luma;
Suno borrows the create request): flat bodies, `{taskId}` create answers, a `GET …?taskId=` status read,
`successFlag`/`status` records and `{code, msg, data}` callbacks (kie-api.md §4 common traits).

A family module declares only what its docs make its own (its flag table, where results live, its
default failure texts) and inherits or calls the rest from here. The docs and the clients that read
these records disagree on spelling, so everything here accepts every spelling any of them uses:

- create: the body is the caller's values plus the fields the model id fixes (`endpoint.fixed`) and
  `callBackUrl`; the answer's `data.taskId` (or `task_id`) is the task id.
- state: `successFlag` as an int, a numeric string or (in one client's types) a boolean, mapped by the
  family's own table because each family gives the numbers a slightly different meaning. It wins when
  present and known (it is the documented field); otherwise a `status` name (GENERATING, SUCCESS,
  CREATE_TASK_FAILED, …; a non-numeric `successFlag` is read as one too), then a generic `state` word
  (wait, queueing, generating, success, fail) is read. A spelling that is present but unknown reads as
  running: polling on is safer than declaring a paid task lost.
- times: epoch ms or seconds as numbers or digit strings, ISO 8601, and "YYYY-MM-DD HH:mm:ss" read as UTC
  (`kie.protocol.task.epoch_ms`).
- failure: `errorCode`/`errorMessage`, also `failCode`/`failMsg`, `errorMsg` and snake_case; an error
  code of 0 is how Aleph says "no error", so it counts as none. A family reports them only when the
  record failed, because the 4o docs example shows `errorCode: 400` on a successful record.
- `paramJson` (a JSON string of the flat body) becomes `input`, without the transport keys
  (`callBackUrl` and its misspellings) and the fields the model id fixes, so it matches what the caller
  passed as values.
- a record-info envelope code a family's docs define as "this task failed" (`failed_codes`, e.g. 501)
  is a failed status, not an error; 404 and 422 ("record is null") mean "not visible yet".
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

from kie.catalog.spec import ModelSpec
from kie.protocol.envelope import ApiRequest, Envelope, error_for
from kie.protocol.families.base import Created
from kie.protocol.task import (
    TaskState,
    TaskStatus,
    as_float,
    as_int,
    as_text,
    epoch_ms,
    loads_maybe,
    mapping_of,
    pick,
)

# Every documented `status` name and `state` word of the legacy records, any family (upper case).
STATUS_WORDS: dict[str, TaskState] = {
    "PENDING": TaskState.PENDING,
    "WAIT": TaskState.PENDING,
    "WAITING": TaskState.PENDING,
    "QUEUING": TaskState.PENDING,
    "QUEUEING": TaskState.PENDING,
    "GENERATING": TaskState.RUNNING,
    "PROCESSING": TaskState.RUNNING,
    "SUCCESS": TaskState.SUCCEEDED,
    "CREATE_TASK_FAILED": TaskState.FAILED,
    "GENERATE_FAILED": TaskState.FAILED,
    "FAILED": TaskState.FAILED,
    "FAIL": TaskState.FAILED,
}
# `successFlag` 0 generating, 1 success, 2 (task creation) failed, 3 generation failed: the table of
# 4o, Flux, Midjourney, Veo and Aleph; Luma adds 4 (callback failed).
COMMON_FLAGS: dict[int, TaskState] = {
    0: TaskState.RUNNING,
    1: TaskState.SUCCEEDED,
    2: TaskState.FAILED,
    3: TaskState.FAILED,
}
NOT_VISIBLE_CODES = frozenset({404, 422})
# Keys that are transport, not input: dropped when a record's echoed parameters become `TaskStatus.input`.
NOT_INPUT = frozenset({"callBackUrl", "calBackUrl", "callbackUrl"})
ERROR_CODE_KEYS = ("errorCode", "failCode", "error_code")
ERROR_MESSAGE_KEYS = ("errorMessage", "errorMsg", "failMsg", "error_message")
PARAM_KEYS = ("paramJson", "param_json", "param")


# -- reading records ------------------------------------------------------------------------------
def flag_of(value: Any) -> int | None:
    """A `successFlag` as an int, whatever type it was sent as; None when absent or not a number."""
    if isinstance(value, bool):
        return int(value)
    number = as_float(value)
    return None if number is None or not math.isfinite(number) else int(number)


def word_state(raw: str | None, words: Mapping[str, TaskState] = STATUS_WORDS) -> TaskState:
    """The state a status word stands for: pending when there is none, running when it is unknown."""
    if not raw:
        return TaskState.PENDING
    return words.get(raw.strip().upper(), TaskState.RUNNING)


def flag_state(
    data: Mapping[str, Any],
    flags: Mapping[int, TaskState],
    words: Mapping[str, TaskState] = STATUS_WORDS,
) -> tuple[TaskState | None, str | None]:
    """(state, raw spelling) of a record: `successFlag` by the family's `flags`, else a `status` name,
    else a `state` word; unknown spellings read as running, and (None, None) means there is none."""
    raw_flag = data.get("successFlag")
    flag = flag_of(raw_flag)
    if flag is not None and flag in flags:
        return flags[flag], str(raw_flag)
    spelled: str | None = None
    for value in (None if flag is not None else raw_flag, data.get("status"), data.get("state")):
        text = as_text(value)
        if text is None or not text.strip():
            continue
        state = words.get(text.strip().upper())
        if state is not None:
            return state, text
        spelled = spelled or text
    if flag is not None:
        return TaskState.RUNNING, str(raw_flag)
    return (TaskState.RUNNING, spelled) if spelled else (None, None)


def error_text(value: Any) -> str | None:
    """An error code as text; 0 is how Aleph says "no error", so it counts as none."""
    text = as_text(value)
    return None if text in (None, "0") else text


def failure_of(data: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(error code, error message) of a record, from every spelling; (None, None) when it names none."""
    code = next((c for c in map(error_text, (data.get(k) for k in ERROR_CODE_KEYS)) if c), None)
    return code, as_text(pick(data, *ERROR_MESSAGE_KEYS))


def task_id_of(*sources: Any) -> str:
    """The first `taskId` (or `task_id`) among `sources`; "" when none has one."""
    for source in sources:
        if isinstance(source, Mapping):
            found = source.get("taskId") or source.get("task_id")
            if found:
                return str(found)
    return ""


def echoed_input(value: Any, *, drop: frozenset[str] = frozenset()) -> dict[str, Any] | None:
    """The request a record echoes (`paramJson`, `promptJson`), without transport and fixed keys."""
    param = loads_maybe(value)
    if not isinstance(param, Mapping):
        return None
    return {k: v for k, v in param.items() if k not in NOT_INPUT and k not in drop}


def record_status(
    data: Mapping[str, Any],
    task_id: str,
    state: TaskState,
    raw_state: str | None,
    *,
    urls: tuple[str, ...] = (),
    fail: tuple[str | None, str | None] = (None, None),
    **fields: Any,
) -> TaskStatus:
    """A record's `TaskStatus`: results only on success, the failure only on failure, the record's own
    task id before the one asked for, and its `createTime`/`completeTime` unless `fields` give them."""
    failed = state is TaskState.FAILED
    fields.setdefault("create_time", epoch_ms(pick(data, "createTime", "create_time")))
    fields.setdefault("complete_time", epoch_ms(pick(data, "completeTime", "complete_time")))
    return TaskStatus(
        task_id=task_id_of(data) or task_id,
        state=state,
        raw_state=raw_state,
        result_urls=urls if state is TaskState.SUCCEEDED else (),
        fail_code=fail[0] if failed else None,
        fail_msg=fail[1] if failed else None,
        raw=data,
        **fields,
    )


# -- callbacks ------------------------------------------------------------------------------------
def callback_code(body: Mapping[str, Any]) -> str:
    """A `{code, msg, data}` callback's code as text; a body without one is a success."""
    return as_text(body.get("code")) or "200"


def callback_status(
    body: Mapping[str, Any],
    task_id: str,
    urls: tuple[str, ...] = (),
    *,
    default_msg: str = "Generation failed",
    **fields: Any,
) -> TaskStatus:
    """Code 200 is success with `urls`; any other code is the failure code and `msg` its reason."""
    code = callback_code(body)
    ok = code == "200"
    return TaskStatus(
        task_id=task_id,
        state=TaskState.SUCCEEDED if ok else TaskState.FAILED,
        raw_state=code,
        result_urls=urls if ok else (),
        fail_code=None if ok else code,
        fail_msg=None if ok else (as_text(body.get("msg")) or default_msg),
        raw=dict(body),
        **fields,
    )


# -- requests -------------------------------------------------------------------------------------
def flat_create(spec: ModelSpec, values: Mapping[str, Any], callback_url: str | None) -> ApiRequest:
    """The legacy create: the caller's values, the fields the model id fixes, and `callBackUrl`."""
    body: dict[str, Any] = {**dict(values), **spec.endpoint.fixed}
    if callback_url:
        body["callBackUrl"] = callback_url
    return ApiRequest("POST", spec.endpoint.create, kind="create", json=body, label=f"create {spec.id}")


class LegacyFamily:
    """Create, status request and envelope handling of a legacy family.

    Subclasses set `api`, `status_path` (used when the spec is unknown), `status_name` (for labels and
    messages), `failed_codes` (record-info envelope codes their docs define as "this task failed") and
    implement `parse_record`/`parse_callback`.
    """

    api = ""
    status_path = ""
    status_name = "record-info"
    failed_codes: ClassVar[Mapping[int, str]] = {}

    def create_request(
        self, spec: ModelSpec, values: Mapping[str, Any], callback_url: str | None
    ) -> ApiRequest:
        return flat_create(spec, values, callback_url)

    def parse_created(self, spec: ModelSpec, data: Any) -> Created:
        task_id = task_id_of(data)
        if not task_id:
            raise ValueError(f"create answer carries no taskId: {data!r}")
        return Created(task_id)

    def status_request(self, spec: ModelSpec | None, task_id: str) -> ApiRequest:
        own = spec is not None and spec.endpoint.api == self.api
        path = spec.endpoint.status if own and spec is not None else self.status_path
        return ApiRequest("GET", path, params={"taskId": task_id}, label=f"{self.api} {self.status_name}")

    def not_visible(self, env: Envelope) -> bool:
        """True for the 404/422 ("record is null") answers a task gives before Kie can see it."""
        return env.code in NOT_VISIBLE_CODES

    def answers(self) -> frozenset[int]:
        return NOT_VISIBLE_CODES | frozenset(self.failed_codes)

    def parse_status(self, env: Envelope, task_id: str) -> TaskStatus:
        if env.code in self.failed_codes:
            return TaskStatus(
                task_id,
                TaskState.FAILED,
                fail_code=str(env.code),
                fail_msg=env.msg or self.failed_codes[env.code],
                raw=env.data,
            )
        if not env.ok:
            raise error_for(env, task_id=task_id)
        return self.parse_record(env.data, task_id)

    def record_of(self, data: Any) -> Mapping[str, Any]:
        if not isinstance(data, Mapping):
            raise ValueError(f"{self.api} {self.status_name} data is not an object: {data!r}")
        return data

    def parse_record(self, data: Any, task_id: str) -> TaskStatus:
        raise NotImplementedError

    def parse_callback(self, body: Mapping[str, Any]) -> TaskStatus:
        raise NotImplementedError


class LegacyImageFamily(LegacyFamily):
    """4o Image and Flux Kontext: records and `{code, msg, data: {taskId, info}}` callbacks that differ
    only in where their results live and which flags mean failure, so each is a subclass that supplies
    `results` (status record) and `callback_results` (callback `info`)."""

    flags: ClassVar[Mapping[int, TaskState]]
    # body fields implied by the model id (Flux's `model`): not part of the caller's input.
    fixed_fields: ClassVar[frozenset[str]] = frozenset()

    def model_of(self, param: Mapping[str, Any]) -> str | None:
        return None

    def results(self, data: Mapping[str, Any]) -> tuple[tuple[str, ...], dict[str, Any]]:
        raise NotImplementedError

    def callback_results(self, info: Mapping[str, Any]) -> tuple[tuple[str, ...], dict[str, Any]]:
        raise NotImplementedError

    def progress_of(self, data: Mapping[str, Any]) -> float | None:
        return None

    def parse_record(self, data: Any, task_id: str) -> TaskStatus:
        record = self.record_of(data)
        state, raw_state = flag_state(record, self.flags)
        state = state or TaskState.PENDING
        param = pick(record, *PARAM_KEYS)
        urls, extra = self.results(record)
        code, message = failure_of(record)
        created = epoch_ms(pick(record, "createTime", "create_time"))
        completed = epoch_ms(pick(record, "completeTime", "complete_time"))
        return record_status(
            record,
            task_id,
            state,
            raw_state,
            urls=urls,
            fail=(code, message or as_text(record.get("status")) or raw_state),
            model=self.model_of(mapping_of(param)),
            cost_time=(completed - created) / 1000 if created and completed else None,
            create_time=created,
            complete_time=completed,
            progress=self.progress_of(record),
            input=echoed_input(param, drop=self.fixed_fields) or None,
            extra=extra,
        )

    def parse_callback(self, body: Mapping[str, Any]) -> TaskStatus:
        """`code` 200 is success; any other code is the failure code and `msg` its reason."""
        data = mapping_of(body.get("data"))
        code = as_int(body.get("code"))
        urls, extra = self.callback_results(mapping_of(data.get("info")))
        task_id = task_id_of(data, body)
        msg = as_text(pick(body, "msg", "message"))
        if code == 200:
            return TaskStatus(task_id, TaskState.SUCCEEDED, result_urls=urls, extra=extra, raw=body)
        return TaskStatus(
            task_id,
            TaskState.FAILED,
            fail_code=str(code) if code is not None else None,
            fail_msg=msg,
            extra=extra,
            raw=body,
        )
