"""Types every family module shares (kept apart from `__init__` so family modules can import them)."""

from __future__ import annotations

from dataclasses import dataclass

from kie.protocol.task import TaskStatus


@dataclass(frozen=True)
class Created:
    """What a create call yields: the task id and, for synchronous endpoints, the finished status."""

    task_id: str
    status: TaskStatus | None = None
