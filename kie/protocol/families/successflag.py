"""What the legacy families that report progress as a `successFlag` share (Midjourney, Luma, Aleph).

These APIs take a flat body (`dict(values)` plus the fields the model id fixes), answer a create with
`data.taskId`, and describe a task in a record whose `successFlag` means something slightly different per
family; only that table and the location of the results differ, so a family module declares those and
inherits the rest from `FlaggedFamily`.

The docs and the clients that read these records disagree on spelling, so everything here is lenient:
`successFlag` arrives as an int, a numeric string or (in one client's types) a boolean; records without it
may carry a `status` name instead (`GENERATING`, `SUCCESS`, `CREATE_TASK_FAILED`, ...); times come as
millisecond integers (Luma's schema, 4o's captured example) or as ISO / "YYYY-MM-DD HH:mm:ss" strings
(Midjourney's and Aleph's schemas). Naive date strings carry no zone; they are read as UTC because no
source names one.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, ClassVar

from kie.catalog.spec import ModelSpec
from kie.protocol.envelope import ApiRequest, Envelope, error_for
from kie.protocol.families.base import Created
from kie.protocol.task import TaskState, TaskStatus, as_float, as_text, loads_maybe

# The documented `status` names of flag-based records (4o, Flux, Luma's quickstart), any family.
STATUS_NAMES: dict[str, TaskState] = {
    "PENDING": TaskState.PENDING,
    "WAITING": TaskState.PENDING,
    "QUEUING": TaskState.PENDING,
    "GENERATING": TaskState.RUNNING,
    "PROCESSING": TaskState.RUNNING,
    "SUCCESS": TaskState.SUCCEEDED,
    "CREATE_TASK_FAILED": TaskState.FAILED,
    "GENERATE_FAILED": TaskState.FAILED,
    "FAILED": TaskState.FAILED,
    "FAIL": TaskState.FAILED,
}
# Keys that are transport, not input: dropped when a record's echoed parameters become `TaskStatus.input`.
NOT_INPUT = frozenset({"callBackUrl", "calBackUrl", "callbackUrl"})


def flag_of(value: Any) -> int | None:
    """A `successFlag` as an int, whatever type it was sent as; None when absent or not a number."""
    if isinstance(value, bool):
        return int(value)
    number = as_float(value)
    return None if number is None else int(number)


def time_ms(value: Any) -> int | None:
    """Milliseconds since the epoch from ms integers, second counts, ISO or "YYYY-MM-DD HH:mm:ss"."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    number = as_float(value)
    if number is not None:
        return int(number if number >= 1e11 else number * 1000)
    text = str(value).strip().replace("Z", "+00:00")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1000)


def echoed_input(value: Any, *, drop: frozenset[str] = frozenset()) -> dict[str, Any] | None:
    """The request a record echoes (`paramJson`, `promptJson`), without transport and fixed keys."""
    param = loads_maybe(value)
    if not isinstance(param, Mapping):
        return None
    return {k: v for k, v in param.items() if k not in NOT_INPUT and k not in drop}


def error_text(value: Any) -> str | None:
    """An error code as text; 0 is how Aleph says "no error", so it counts as none."""
    text = as_text(value)
    return None if text in (None, "0") else text


def task_id_of(*sources: Any) -> str:
    for source in sources:
        if isinstance(source, Mapping):
            found = source.get("taskId") or source.get("task_id")
            if found:
                return str(found)
    return ""


class FlaggedFamily:
    """Create, status request and envelope handling shared by the successFlag families.

    Subclasses set `api`, `status_path` (used when the spec is unknown), `failed_codes` (record-info
    envelope codes their docs define as "this task failed") and implement `parse_record`/`parse_callback`.
    """

    api = ""
    status_path = ""
    failed_codes: ClassVar[Mapping[int, str]] = {}
    not_visible_codes = frozenset({404, 422})

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
        path = spec.endpoint.status if spec is not None else self.status_path
        return ApiRequest("GET", path, params={"taskId": task_id}, label=f"{self.api} record-info")

    def not_visible(self, env: Envelope) -> bool:
        return env.code in self.not_visible_codes

    def answers(self) -> frozenset[int]:
        return frozenset({*self.not_visible_codes, *self.failed_codes})

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
        if not isinstance(env.data, Mapping):
            raise ValueError(f"{self.api} record-info data is not an object: {env.data!r}")
        return self.parse_record(env.data, task_id)

    def parse_record(self, data: Mapping[str, Any], task_id: str) -> TaskStatus:
        raise NotImplementedError

    def parse_callback(self, body: Mapping[str, Any]) -> TaskStatus:
        raise NotImplementedError


def flag_state(
    data: Mapping[str, Any],
    flags: Mapping[int, TaskState],
    names: Mapping[str, TaskState] = STATUS_NAMES,
) -> tuple[TaskState | None, str | None]:
    """(state, raw spelling) from `successFlag`, else from a `status` name; (None, None) if neither.

    An unknown flag or name reads as RUNNING: polling on is safer than declaring a paid task lost."""
    raw = data.get("successFlag")
    flag = flag_of(raw)
    if flag is not None:
        return flags.get(flag, TaskState.RUNNING), str(raw)
    for name in (raw, data.get("status")):
        text = as_text(name)
        if text is not None and text.strip():
            return names.get(text.strip().upper(), TaskState.RUNNING), text
    return None, None
