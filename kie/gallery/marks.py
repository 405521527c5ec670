"""A user's marks on results: star, reject, archive and tags. They never touch the job row itself.

A matrix winner is a star too, with the other cells of its row unstarred in the same transaction, so
"the pick of this row" is one thing to look for whichever page set it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, select, update

from kie.errors import ValidationError
from kie.store import Ledger, Record
from kie.store.schema import jobs, marks

FLAGS = ("starred", "rejected", "archived")
_TAG = re.compile(r"^[\w.+-]{1,40}$", re.UNICODE)


def marks_of(ledger: Ledger, job_id: str) -> Record:
    with ledger._read() as c:
        row = c.execute(select(marks).where(marks.c.job_id == job_id)).mappings().first()
    if row is None:
        return {"job_id": job_id, "starred": False, "rejected": False, "archived": False, "tags": []}
    return {**dict(row), "tags": list(row["tags"] or [])}


def parse_tags(raw: str) -> list[str]:
    """Tags from what a user typed: separated by commas or spaces, each a word of up to 40 characters."""
    tags = [tag for tag in re.split(r"[,\s]+", raw.strip()) if tag]
    bad = [tag for tag in tags if not _TAG.match(tag)]
    if bad:
        raise ValidationError(
            f"The tag {bad[0]!r} is not allowed; tags are words of letters, digits, '.', '+', '-' or '_' "
            "(up to 40 characters), separated by commas or spaces."
        )
    return list(dict.fromkeys(tags))[:20]


def set_marks(ledger: Ledger, job_id: str, **changes: Any) -> Record:
    """Set some of a job's flags (and tags); returns its marks after the change."""
    unknown = set(changes) - {*FLAGS, "tags"}
    if unknown:
        raise ValidationError(f"Unknown mark {sorted(unknown)[0]!r}; marks are {', '.join(FLAGS)} and tags.")
    values: dict[str, Any] = {key: bool(value) for key, value in changes.items() if key in FLAGS}
    if "tags" in changes:
        values["tags"] = list(changes["tags"])
    with ledger.engine.begin() as c:
        _upsert(c, job_id, values)
    return marks_of(ledger, job_id)


def pick_winner(ledger: Ledger, job_id: str, row_peers: Sequence[str]) -> Record:
    """Star `job_id` and unstar the other cells of its matrix row, in one transaction."""
    with ledger.engine.begin() as c:
        for peer in row_peers:
            if peer != job_id:
                _upsert(c, peer, {"starred": False})
        _upsert(c, job_id, {"starred": True})
    return marks_of(ledger, job_id)


def _upsert(c: Any, job_id: str, values: dict[str, Any]) -> None:
    if c.execute(select(jobs.c.id).where(jobs.c.id == job_id)).first() is None:
        raise ValidationError(f"No job {job_id!r} in this ledger; reload the gallery to see current jobs.")
    now = time.time()
    moved = c.execute(update(marks).where(marks.c.job_id == job_id).values(**values, updated_at=now))
    if moved.rowcount == 0:
        row = {"job_id": job_id, "starred": False, "rejected": False, "archived": False, "tags": None}
        row.update(values)
        c.execute(insert(marks).values(**row, updated_at=now))
