"""One normalised view of a task, whatever family or endpoint it came from.

Kie spells state six ways (`state`, `successFlag` 0-4 as int or string, `status` strings, Suno's
stages); every family module maps its spelling onto `TaskState` so the rest of kie never sees them.
The raw payload is kept for anyone who needs a field this view does not carry.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class TaskState(str, Enum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def terminal(self) -> bool:
        return self in (TaskState.SUCCEEDED, TaskState.FAILED)


@dataclass(frozen=True)
class TaskStatus:
    task_id: str
    state: TaskState
    model: str | None = None
    raw_state: str | None = None
    result_urls: tuple[str, ...] = ()
    fail_code: str | None = None
    fail_msg: str | None = None
    cost_time: float | None = None
    create_time: int | None = None
    complete_time: int | None = None
    progress: float | None = None
    credits_consumed: float | None = None
    input: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    raw: Any = None

    @property
    def done(self) -> bool:
        return self.state.terminal


def loads_maybe(value: Any) -> Any:
    """Decode a JSON string if it is one; Kie double-encodes `param` and its `input`."""
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def as_float(value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def as_int(value: Any) -> int | None:
    number = as_float(value)
    return None if number is None else int(number)


def as_text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return str(value)


def url_list(value: Any) -> tuple[str, ...]:
    """Result URLs from a list of strings or of `{resultUrl: …}`-style objects, skipping blanks."""
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,) if value else ()
    urls: list[str] = []
    if isinstance(value, list):
        for item in value:
            if isinstance(item, str) and item:
                urls.append(item)
            elif isinstance(item, dict):
                for key in ("resultUrl", "url", "audioUrl", "audio_url", "videoUrl", "imageUrl"):
                    if isinstance(item.get(key), str) and item[key]:
                        urls.append(item[key])
                        break
    return tuple(urls)
