"""Every running task of a batch, waited for by one heap and a bounded set of polls.

A coroutine per running task costs about 20 kB (its stack of frames, its timer, the rows it holds), so
10,000 tasks in flight took hundreds of megabytes. Here a task in flight is one heap entry of about
half a kilobyte, and only the polls actually under way hold a coroutine. The rules for when to poll
and how to read the answer are `kie.protocol.flows.Watch`, the same ones `Kie.wait` follows.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass

from kie.client import AsyncKie
from kie.errors import KieError
from kie.protocol import flows
from kie.protocol.flows import Watch
from kie.protocol.task import TaskState, TaskStatus

# What ends a watch: the task's terminal status, or the error that made us stop asking (the deadline,
# a refused poll). The task itself may still be running on Kie in the second case.
Settle = Callable[[str, "TaskStatus | KieError"], None]


@dataclass(slots=True)
class _Entry:
    job_id: str
    watch: Watch
    dropped: bool = False


class Watcher:
    """Polls each watched task on its own schedule and hands the outcome to `settle`, once."""

    def __init__(self, client: AsyncKie, settle: Settle, *, concurrency: int = 32) -> None:
        self._client = client
        self._settle = settle
        self._heap: list[tuple[float, int, _Entry]] = []
        self._entries: dict[str, _Entry] = {}
        self._order = itertools.count()
        self._wake = asyncio.Event()
        self._polls = asyncio.Semaphore(concurrency)
        self._running: set[asyncio.Task[None]] = set()
        self._closed = False

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._entries

    def add(self, job_id: str, watch: Watch, *, now: bool = False) -> None:
        """Watch a task: poll it at once (`now`, for a resumed job) or when its schedule says."""
        entry = _Entry(job_id, watch)
        self._entries[job_id] = entry
        try:
            due = time.monotonic() + (0.0 if now else watch.delay(time.monotonic()))
        except KieError as exc:
            self._finish(entry, exc)
            return
        self._push(due, entry)

    def drop(self, job_id: str) -> bool:
        """Stop watching (someone else settled the job); True if it was being watched."""
        entry = self._entries.pop(job_id, None)
        if entry is None:
            return False
        entry.dropped = True
        return True

    def close(self) -> None:
        """`run` returns once nothing is watched and no poll is under way."""
        self._closed = True
        self._wake.set()

    async def run(self) -> None:
        while True:
            # Entries dropped because someone else settled their job are discarded as soon as they
            # reach the top, so they neither hold memory nor keep a closing watcher waiting.
            while self._heap and self._heap[0][2].dropped:
                heapq.heappop(self._heap)
            if not self._heap and not self._running and self._closed:
                return
            delay = self._heap[0][0] - time.monotonic() if self._heap else None
            if delay is None or delay > 0:
                self._wake.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
                continue
            _, _, entry = heapq.heappop(self._heap)
            if entry.dropped:
                continue
            await self._polls.acquire()
            task = asyncio.get_running_loop().create_task(self._poll(entry))
            self._running.add(task)
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._polls.release()
        self._wake.set()

    def _push(self, due: float, entry: _Entry) -> None:
        earliest = not self._heap or due < self._heap[0][0]
        heapq.heappush(self._heap, (due, next(self._order), entry))
        if earliest:
            self._wake.set()

    def _finish(self, entry: _Entry, outcome: TaskStatus | KieError) -> None:
        if self._entries.get(entry.job_id) is entry:
            del self._entries[entry.job_id]
            self._settle(entry.job_id, outcome)

    async def _poll(self, entry: _Entry) -> None:
        try:
            status: TaskStatus | None = await self._client.run(flows.poll(entry.watch, time.monotonic))
            if entry.dropped:
                return
            if status is not None and status.state in (TaskState.SUCCEEDED, TaskState.FAILED):
                self._finish(entry, status)
                return
            now = time.monotonic()
            self._push(now + entry.watch.delay(now), entry)
        except KieError as exc:
            if not entry.dropped:
                self._finish(entry, exc)
        except Exception as exc:  # a bug must not strand the job: it stays running in the ledger
            if not entry.dropped:
                message = f"Polling task {entry.watch.task_id} stopped on an unexpected error: {exc!r}"
                self._finish(entry, KieError(message, task_id=entry.watch.task_id))
