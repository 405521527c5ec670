"""Files a finished sandbox task shows beside its results (covers, thumbnails, uncropped or stitched videos),
and the "YYYY-MM-DD HH:mm:ss" clock the Veo and Runway records use.

The engine registers a task's result files; these extra files are registered on first use, next to the
results and with their lifetimes, so every URL a record or callback shows really downloads.
Not a family itself (it is absent from `SANDBOX_FAMILIES`); the Veo and Runway modules import it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from kie.sandbox.state import SandboxState, SandboxTask, StoredFile


def clock(ms: int | None) -> str | None:
    """Kie's legacy "YYYY-MM-DD HH:mm:ss" (the docs' examples); UTC, since no source names a zone."""
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def companion_url(
    state: SandboxState,
    task: SandboxTask,
    name: str,
    *,
    fmt: str,
    media: str,
    values: Mapping[str, Any] | None = None,
) -> str | None:
    """The URL of file `name` of a finished task, registered (rendered lazily) the first time it is asked
    for; None while the task has no results to stand beside."""
    if not task.result_urls:
        return None
    with state.lock:
        known: dict[str, str] = task.extra.setdefault("companions", {})
        if name in known:
            return known[name]
        result_path = task.result_urls[0].split("/files/", 1)
        base, first = result_path[0], result_path[-1]
        template = state.files.get(first)
        now = state.now()
        path = f"r/{task.task_id}/{name}.{fmt}"
        state.files[path] = StoredFile(
            content_type="",
            created_at=now,
            expires_at=template.expires_at if template else now + state.config.scaled(state.config.url_ttl),
            retained_until=template.retained_until if template else float("inf"),
            recipe=(task.model, media, fmt, {**task.input, **(values or {}), "companion": name}, 0),
            task_id=task.task_id,
        )
        known[name] = f"{base}/files/{path}"
        return known[name]
