"""What the legacy image families (4o Image, Flux Kontext) share: flat bodies, `successFlag` records,
`{code, msg, data: {taskId, info}}` callbacks (kie-api.md §4 common traits).

The two families differ only in where their results live and which flags mean failure, so each is a
subclass that supplies `results` (status record) and `callback_results` (callback `info`). Everything
else here accepts every spelling the docs use, because the docs contradict themselves:

- state: `successFlag` as int or string ("0"…"3"), `status` strings (GENERATING, SUCCESS,
  CREATE_TASK_FAILED, GENERATE_FAILED), and generic `state` words (wait, queueing, generating, success,
  fail). `successFlag` wins when present (it is the documented field); `status`, then `state` are read
  only when it is absent or unknown.
- times: epoch ms as int or digit string (OpenAPI, the captured CN quickstart), ISO 8601 (Flux
  examples) and `"YYYY-MM-DD HH:mm:ss"` (4o quickstart). No document gives the zone of the naive form;
  it is read as UTC, the only zone-neutral choice.
- failure: `errorCode`/`errorMessage`, also `failCode`/`failMsg` and `errorMsg`. They are reported only
  when the record failed, because the 4o docs example shows `errorCode: 400` on a successful record.
- `paramJson` (a JSON string of the flat body) becomes `input`, without `callBackUrl` and the fields the
  model id fixes, so it matches what the caller passed as values.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, ClassVar

from kie.catalog.spec import ModelSpec
from kie.protocol.envelope import ApiRequest, Envelope, error_for
from kie.protocol.families.base import Created
from kie.protocol.task import TaskState, TaskStatus, as_float, as_int, as_text, loads_maybe

STATUS_WORDS = {
    "GENERATING": TaskState.RUNNING,
    "SUCCESS": TaskState.SUCCEEDED,
    "CREATE_TASK_FAILED": TaskState.FAILED,
    "GENERATE_FAILED": TaskState.FAILED,
}
STATE_WORDS = {
    "wait": TaskState.PENDING,
    "waiting": TaskState.PENDING,
    "queueing": TaskState.PENDING,
    "queuing": TaskState.PENDING,
    "generating": TaskState.RUNNING,
    "success": TaskState.SUCCEEDED,
    "fail": TaskState.FAILED,
    "failed": TaskState.FAILED,
}
NOT_VISIBLE_CODES = frozenset({404, 422})
# Below this an epoch number must be seconds: 10^11 ms is 1973, 10^11 s is the year 5138.
SECONDS_LIMIT = 100_000_000_000
NAIVE_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M:%S.%f")


def pick(mapping: Mapping[str, Any] | None, *keys: str) -> Any:
    """The first present, non-empty value among `keys` (camelCase and snake_case spellings)."""
    if not mapping:
        return None
    for key in keys:
        value = mapping.get(key)
        if value is not None and value != "":
            return value
    return None


def epoch_ms(value: Any) -> int | None:
    """Epoch milliseconds from any documented time spelling; None when it cannot be read."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and not value.strip().lstrip("-").replace(".", "", 1).isdigit():
        return _parse_date(value.strip())
    number = as_float(value)
    if number is None:
        return None
    return int(number * 1000) if abs(number) < SECONDS_LIMIT else int(number)


def _parse_date(text: str) -> int | None:
    for fmt in NAIVE_FORMATS:
        try:
            naive = datetime.strptime(text, fmt)
        except ValueError:
            continue
        return int(naive.replace(tzinfo=timezone.utc).timestamp() * 1000)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return int(parsed.timestamp() * 1000)


def flag_state(value: Any, flags: Mapping[int, TaskState]) -> TaskState | None:
    number = as_int(value) if not isinstance(value, bool) else None
    return flags.get(number) if number is not None else None


def record_state(data: Mapping[str, Any], flags: Mapping[int, TaskState]) -> tuple[TaskState, str | None]:
    """The task state and the raw spelling it was read from."""
    flag = data.get("successFlag")
    state = flag_state(flag, flags)
    if state is not None:
        return state, str(flag)
    status = as_text(data.get("status"))
    if status is not None and status.upper() in STATUS_WORDS:
        return STATUS_WORDS[status.upper()], status
    word = as_text(data.get("state"))
    if word is not None and word.lower() in STATE_WORDS:
        return STATE_WORDS[word.lower()], word
    raw = as_text(flag) or status or word
    return (TaskState.RUNNING if raw else TaskState.PENDING), raw


def callback_task_id(body: Mapping[str, Any], data: Mapping[str, Any]) -> str:
    return str(pick(data, "taskId", "task_id") or pick(body, "taskId", "task_id") or "")


class LegacyImageFamily:
    """A legacy image API; subclasses name their paths, flags and result locations."""

    api: str
    default_status_path: ClassVar[str]
    flags: ClassVar[Mapping[int, TaskState]]
    # recordInfo envelope codes that mean "the task failed" rather than "this request failed".
    failed_codes: ClassVar[Mapping[int, str]] = {}
    # body fields implied by the model id (Flux's `model`): not part of the caller's input.
    fixed_fields: ClassVar[frozenset[str]] = frozenset()

    def model_of(self, param: Mapping[str, Any]) -> str | None:
        return None

    def results(self, data: Mapping[str, Any]) -> tuple[tuple[str, ...], dict[str, Any]]:
        raise NotImplementedError

    def callback_results(self, info: Mapping[str, Any]) -> tuple[tuple[str, ...], dict[str, Any]]:
        raise NotImplementedError

    # -- requests ---------------------------------------------------------------------------------
    def create_request(
        self, spec: ModelSpec, values: Mapping[str, Any], callback_url: str | None
    ) -> ApiRequest:
        body: dict[str, Any] = {**dict(values), **spec.endpoint.fixed}
        if callback_url:
            body["callBackUrl"] = callback_url
        return ApiRequest("POST", spec.endpoint.create, kind="create", json=body, label=f"create {spec.id}")

    def parse_created(self, spec: ModelSpec, data: Any) -> Created:
        task_id = pick(data, "taskId", "task_id") if isinstance(data, Mapping) else None
        if not task_id:
            raise ValueError(f"create answer carries no taskId: {data!r}")
        return Created(str(task_id))

    def status_request(self, spec: ModelSpec | None, task_id: str) -> ApiRequest:
        own = spec is not None and spec.endpoint.api == self.api
        path = spec.endpoint.status if own and spec is not None else self.default_status_path
        return ApiRequest("GET", path, params={"taskId": task_id}, label=f"{self.api} record-info")

    def not_visible(self, env: Envelope) -> bool:
        """True for the 404/422 ("record is null") answers a task gives before Kie can see it."""
        return env.code in NOT_VISIBLE_CODES

    def answers(self) -> frozenset[int]:
        return NOT_VISIBLE_CODES | frozenset(self.failed_codes)

    # -- status -----------------------------------------------------------------------------------
    def parse_status(self, env: Envelope, task_id: str) -> TaskStatus:
        if env.code in self.failed_codes:
            msg = env.msg or self.failed_codes[env.code]
            return TaskStatus(task_id, TaskState.FAILED, fail_code=str(env.code), fail_msg=msg, raw=env.data)
        if not env.ok:
            raise error_for(env, task_id=task_id)
        return self.parse_record(env.data, task_id)

    def parse_record(self, data: Any, task_id: str) -> TaskStatus:
        if not isinstance(data, Mapping):
            raise ValueError(f"{self.api} record-info data is not an object: {data!r}")
        state, raw_state = record_state(data, self.flags)
        param = loads_maybe(pick(data, "paramJson", "param_json", "param"))
        param = param if isinstance(param, Mapping) else {}
        urls, extra = self.results(data)
        failed = state is TaskState.FAILED
        created = epoch_ms(pick(data, "createTime", "create_time"))
        completed = epoch_ms(pick(data, "completeTime", "complete_time"))
        return TaskStatus(
            task_id=str(pick(data, "taskId", "task_id") or task_id),
            state=state,
            model=self.model_of(param),
            raw_state=raw_state,
            result_urls=urls if state is TaskState.SUCCEEDED else (),
            fail_code=as_text(pick(data, "errorCode", "failCode", "error_code")) if failed else None,
            fail_msg=self.failure_message(data, raw_state) if failed else None,
            cost_time=(completed - created) / 1000 if created and completed else None,
            create_time=created,
            complete_time=completed,
            progress=self.progress_of(data),
            input=self.input_of(param) or None,
            extra=extra,
            raw=data,
        )

    def failure_message(self, data: Mapping[str, Any], raw_state: str | None) -> str | None:
        message = pick(data, "errorMessage", "errorMsg", "failMsg", "error_message")
        return as_text(message) or as_text(data.get("status")) or raw_state

    def progress_of(self, data: Mapping[str, Any]) -> float | None:
        return None

    def input_of(self, param: Mapping[str, Any]) -> dict[str, Any]:
        skip = {"callBackUrl", *self.fixed_fields}
        return {k: v for k, v in param.items() if k not in skip}

    # -- callbacks --------------------------------------------------------------------------------
    def parse_callback(self, body: Mapping[str, Any]) -> TaskStatus:
        """`code` 200 is success; any other code is the failure code and `msg` its reason."""
        data = body.get("data")
        data = data if isinstance(data, Mapping) else {}
        code = as_int(body.get("code"))
        info = loads_maybe(data.get("info"))
        urls, extra = self.callback_results(info if isinstance(info, Mapping) else {})
        task_id = callback_task_id(body, data)
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
