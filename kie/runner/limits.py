"""The account's read limit, shared through the ledger by every process that reads task status.

Kie allows about 10 status reads per second per key. Each process pacing itself (the batch engine,
`kie serve`, a second batch) would add up past it; a slot reserved in the ledger, the same way creates
are paced, keeps them all within it together.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from kie.store import Ledger

READS_PER_SECOND = 10.0
LIMITER = "status-reads"


def read_gate(
    ledger: Ledger, *, scale: float = 1.0, per_second: float = READS_PER_SECOND
) -> Callable[[], Awaitable[None]]:
    """An `AsyncKie.read_gate` that waits for the next shared read slot (time-scaled like the sandbox)."""
    interval = scale / per_second if per_second > 0 else 0.0

    async def gate() -> None:
        wait = ledger.reserve_slot(LIMITER, interval)  # a short write, like every ledger call here
        if wait > 0:
            await asyncio.sleep(wait)

    return gate
