"""Per-model behaviour the recordings of real Kie traffic show, and the fields newer docs add.

- One non-terminal state per Market model for the whole task, then straight to `success`:
  `generating` for the models below, `waiting` for every other model seen (and as the default). A
  catalogue entry can set it with an optional `sandbox_state` field, which wins over this table.
- `param.input` echoes numeric strings as numbers (`"duration": "6"` comes back as `6`).
- `--recordinfo-fields 2026-09`: the fields Kie's docs of 2026-09-24 list and the April recordings never
  show (recordInfo: `updateTime`, `progress`, `creditsConsumed`; callbacks: `firstFrameUrl`,
  `lastFrameUrl`, `resultObject`), so clients can be tried against both shapes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from kie.catalog.spec import ModelSpec
from kie.sandbox.state import SandboxState, SandboxTask, StoredFile

GENERATING_MODELS = frozenset(
    {
        "seedream/5-lite-text-to-image",
        "seedream/5-lite-image-to-image",
        "gpt-image-2-text-to-image",
        "kling-3.0/video",
    }
)
NEWER_FIELDS = "2026-09"
RECORDINFO_FIELD_SETS = (NEWER_FIELDS,)
_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?")


def running_state(spec: ModelSpec) -> str:
    """The state a task shows from its create until it ends. Legacy families keep the generic
    waiting → generating progression their own encodings are derived from."""
    if spec.endpoint.api != "market":
        return "generating"
    declared = getattr(spec, "sandbox_state", None)
    if isinstance(declared, str) and declared in ("waiting", "generating"):
        return declared
    return "generating" if spec.id in GENERATING_MODELS else "waiting"


def echo_input(values: Mapping[str, Any]) -> dict[str, Any]:
    """The input as Kie echoes it in `param.input`: top-level numeric strings become numbers."""
    echoed: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, str) and _NUMBER.fullmatch(value):
            echoed[key] = float(value) if "." in value else int(value)
        else:
            echoed[key] = value
    return echoed


def newer_record_fields(state: SandboxState, task: SandboxTask) -> dict[str, Any]:
    """`updateTime` (the last change), `progress` (0-100) and `creditsConsumed` (0 until charged)."""
    with state.lock:
        changed = task.history[-1][1] if task.history else task.created_at
        if task.state == "success":
            progress = 100
        elif task.terminal:
            progress = 0
        else:
            started = task.created_at + task.wait_seconds
            span = max(task.generate_seconds, 1e-9)
            progress = int(min(99.0, max(0.0, (state.now() - started) / span * 100)))
        return {
            "updateTime": state.now_ms(changed),
            "progress": progress,
            "creditsConsumed": task.credits_consumed if task.terminal else 0,
        }


def newer_callback_fields(state: SandboxState, task: SandboxTask) -> dict[str, Any]:
    """`firstFrameUrl` and `lastFrameUrl` (video results: real stills, registered beside the results)
    and `resultObject` (null for media results)."""
    fields: dict[str, Any] = {"resultObject": None}
    if task.state != "success" or not task.result_urls or not task.result_urls[0].endswith(".mp4"):
        return fields
    base = task.result_urls[0].split("/files/", 1)[0]
    with state.lock:
        template = state.files.get(f"r/{task.task_id}/0.mp4")
        now = state.now()
        for which in ("first", "last"):
            path = f"r/{task.task_id}/{which}_frame.jpg"
            if path not in state.files:
                state.files[path] = StoredFile(
                    content_type="",
                    created_at=now,
                    expires_at=template.expires_at if template else now,
                    retained_until=template.retained_until if template else now,
                    recipe=(task.model, "image", "jpg", {**task.input, "frame": which}, 0),
                    task_id=task.task_id,
                )
            fields[f"{which}FrameUrl"] = f"{base}/files/{path}"
    return fields
