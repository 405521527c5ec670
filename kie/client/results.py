"""What a finished generation hands back: files already on disk, with their provenance."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import anyio

from kie.catalog.pricing import Estimate
from kie.protocol.files import SavedFile
from kie.protocol.task import TaskStatus


@dataclass(frozen=True)
class Result:
    """One downloaded output. The file is already saved; `.url` is where it came from (it expires)."""

    url: str
    path: Path
    sha256: str
    size: int
    content_type: str | None = None

    @classmethod
    def from_saved(cls, saved: SavedFile) -> Result:
        return cls(saved.url, saved.path, saved.sha256, saved.size, saved.content_type)

    def read(self) -> bytes:
        return self.path.read_bytes()

    def save(self, destination: str | Path) -> Path:
        """Copy the file elsewhere; a folder keeps the file's name."""
        target = Path(destination)
        if target.is_dir():
            target = target / self.path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.path, target)
        return target

    async def aread(self) -> bytes:
        return await anyio.Path(self.path).read_bytes()

    async def asave(self, destination: str | Path) -> Path:
        return await anyio.to_thread.run_sync(self.save, destination)


@dataclass(frozen=True)
class Submission:
    """A created task: its id is known, so nothing about it can be lost any more."""

    task_id: str
    model: str
    estimate: Estimate
    input: dict[str, object] = field(default_factory=dict)
    status: TaskStatus | None = None  # set when the endpoint answers synchronously


@dataclass(frozen=True)
class Generation:
    """A finished task with its results on disk: what `generate` returns, so nothing needs a refetch."""

    task_id: str
    model: str
    status: TaskStatus
    results: tuple[Result, ...]
    estimate: Estimate

    @property
    def paths(self) -> list[Path]:
        return [r.path for r in self.results]

    @property
    def credits(self) -> float | None:
        """Credits Kie reported (callbacks), else the estimate."""
        if self.status.credits_consumed is not None:
            return self.status.credits_consumed
        return self.estimate.credits
