"""Polling priors from the ledger: how long this account's finished jobs took.

A fresh process knows only the catalogue's typical duration, so its first tasks of every model are
polled on a guess, and a batch that resumes or follows another relearns what the ledger already holds.
Loading the recent durations up front puts those tasks on the learned schedule from the first poll.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import select

from kie.protocol.polling import PollClock, duration_keys
from kie.store import DONE, SUCCEEDED, Ledger
from kie.store.schema import jobs

# Enough for the newest samples of every key a busy account uses, small enough to load in one short read.
RECENT = 5000


def load_priors(ledger: Ledger, clock: PollClock | None = None, *, limit: int = RECENT) -> PollClock:
    """Fill `clock` (or a new one) with the durations of the ledger's most recent finished jobs.

    The duration is `cost_time`, Kie's own measure of the whole task, queue included, so it does not
    carry the delay of whichever schedule happened to notice the result. Jobs are fed oldest first, so
    each key keeps its newest samples."""
    clock = clock if clock is not None else PollClock()
    query = (
        select(jobs.c.model, jobs.c.input, jobs.c.cost_time)
        .where(jobs.c.state.in_((SUCCEEDED, DONE)), jobs.c.cost_time > 0)
        .order_by(jobs.c.completed_at.desc().nulls_last(), jobs.c.created_at.desc())
        .limit(limit)
    )
    # A deferred read: on SQLite it neither waits for nor blocks a batch writing to the same store.
    with ledger._read() as c:
        rows = c.execute(query).all()
    for model, values, seconds in reversed(rows):
        clock.observe(duration_keys(model, values if isinstance(values, Mapping) else None), float(seconds))
    return clock
