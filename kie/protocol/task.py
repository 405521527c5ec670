"""One normalised view of a task, whatever family or endpoint it came from.

Kie spells state six ways (`state`, `successFlag` 0-4 as int or string, `status` strings, Suno's
stages); every family module maps its spelling onto `TaskState` so the rest of kie never sees them.
The raw payload is kept for anyone who needs a field this view does not carry.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
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


def mapping_of(value: Any) -> Mapping[str, Any]:
    """`value` (or the JSON object it encodes) as a mapping; empty when it is neither."""
    decoded = loads_maybe(value)
    return decoded if isinstance(decoded, Mapping) else {}


def pick(source: Any, *keys: str) -> Any:
    """The first present, non-empty value among `keys` (camelCase and snake_case spellings)."""
    if not isinstance(source, Mapping):
        return None
    for key in keys:
        value = source.get(key)
        if value is not None and value != "":
            return value
    return None


def text_at(source: Any, *keys: str) -> str | None:
    """The first non-empty value among `keys`, as text."""
    return as_text(pick(source, *keys))


# Below this an epoch number must be seconds: 10^11 ms is 1973, 10^11 s is the year 5138.
SECONDS_LIMIT = 100_000_000_000
NAIVE_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M:%S.%f")


def epoch_ms(value: Any) -> int | None:
    """Epoch milliseconds from every time spelling Kie uses; None when it cannot be read.

    Numbers (int, float or digit string) are milliseconds, or seconds when too small to be a
    millisecond time; strings are ISO 8601 or "YYYY-MM-DD HH:mm:ss". No document gives the zone of the
    naive forms; they are read as UTC, the only zone-neutral choice."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    number = as_float(value)
    if number is not None:
        if not math.isfinite(number):
            return None
        return int(number * 1000) if abs(number) < SECONDS_LIMIT else int(number)
    return _parse_date(value.strip()) if isinstance(value, str) else None


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


def urls_at(source: Any, *keys: str) -> tuple[str, ...]:
    """The URLs under the first of `keys` that holds any (a list, a JSON-encoded list or one string)."""
    if not isinstance(source, Mapping):
        return ()
    for key in keys:
        urls = url_list(loads_maybe(source.get(key)))
        if urls:
            return urls
    return ()
