"""The job ledger: the source of truth for every paid intent, on SQLite (default) or PostgreSQL.

The rules that keep "never submit twice" true (see docs in `kie/store/__init__.py`):

- A job row exists, committed, before its create request is sent (`claim_for_submit`).
- `submitting` never goes back to `pending` unless Kie definitively refused the create (`release`).
  A crash or lease expiry while `submitting` makes the job `unknown`; nothing resends it automatically.
- Every transition is a compare-and-set on (state, claim_seq); a stale worker's write simply fails.
- The task id is committed the moment Kie returns it (`mark_running`).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import socket
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, Select, and_, create_engine, event, func, insert, select, update
from sqlalchemy.engine import Connection, Result

from kie.errors import BudgetExceededError, ConfigurationError
from kie.store.schema import batches, events, files, jobs, limiters

# Job states. `done` means downloaded; `succeeded` means Kie finished but the files are not saved yet.
PENDING, SUBMITTING, RUNNING = "pending", "submitting", "running"
SUCCEEDED, DONE, FAILED = "succeeded", "done", "failed"
REJECTED, UNKNOWN, ABANDONED = "rejected", "unknown", "abandoned"
STATES = (PENDING, SUBMITTING, RUNNING, SUCCEEDED, DONE, FAILED, REJECTED, UNKNOWN, ABANDONED)
IN_FLIGHT = (SUBMITTING, RUNNING, SUCCEEDED, UNKNOWN)
FINISHED = (DONE, FAILED, REJECTED, ABANDONED)


# A row as the ledger hands it out: a plain dict, detached from its result. SQLAlchemy's RowMapping
# keeps its whole result's metadata alive (about 7 kB), and the runner holds one per job in flight.
Record = Mapping[str, Any]


def _select_jobs(batch_id: str | None, states: Iterable[str] | None) -> Select[Any]:
    query = select(jobs).order_by(*_ROW_ORDER)
    if batch_id is not None:
        query = query.where(jobs.c.batch_id == batch_id)
    if states is not None:
        query = query.where(jobs.c.state.in_(list(states)))
    return query


def _first(result: Result[Any]) -> Record | None:
    row = result.mappings().first()
    return None if row is None else dict(row)


def _all(result: Result[Any]) -> list[Record]:
    return [dict(row) for row in result.mappings()]


# File order: the batch's rows as written, each row's steps in turn (the id breaks ties, so pages are stable).
_ROW_ORDER = (jobs.c.created_at, jobs.c.row_line, jobs.c.step, jobs.c.id)

# What a job costs for budgeting: Kie's reported credits when known, else the estimate.
_COST = func.coalesce(jobs.c.actual_credits, jobs.c.estimated_credits, 0.0)
_COMMITTED = ("submitting", "running", "succeeded", "done", "unknown")


def canonical(values: Mapping[str, Any]) -> str:
    return json.dumps(values, sort_keys=True, separators=(",", ":"), default=str)


def input_hash(model: str, values: Mapping[str, Any]) -> str:
    return hashlib.sha256(f"{model}\n{canonical(values)}".encode()).hexdigest()


def default_store_url(home: Path) -> str:
    home.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{home / 'ledger.db'}"


def _sqlite_pragmas(engine: Engine) -> None:
    """WAL for concurrent readers, and BEGIN IMMEDIATE so that every transaction (each one a
    read-then-compare-and-set) holds the write lock from its first statement, across processes."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


@dataclass(frozen=True)
class NewJob:
    model: str
    input: dict[str, Any]
    row_key: str | None = None
    row_line: int | None = None
    step: int = 0
    parent_job_id: str | None = None
    relation: str | None = None
    output_name: str | None = None
    estimated_credits: float | None = None
    pending_input: dict[str, Any] | None = None


class Ledger:
    """Thread-safe (one engine, one connection per call). Every method commits before returning."""

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            self.engine = create_engine(url, future=True, pool_pre_ping=True)
        except Exception as exc:
            raise ConfigurationError(
                f"Cannot open the job store {url!r}: {exc}. Check KIE_STORE_URL."
            ) from exc
        if self.engine.dialect.name == "sqlite":
            _sqlite_pragmas(self.engine)
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.migrate()

    def migrate(self) -> None:
        """Bring the schema to the newest revision (idempotent; runs on every open)."""
        config = Config()
        config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
        with self.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    def close(self) -> None:
        self.engine.dispose()

    # -- batches ------------------------------------------------------------------------------------
    def ensure_batch(
        self, batch_id: str, *, source: str | None, output_dir: str | None, options: dict[str, Any]
    ) -> None:
        with self.engine.begin() as c:
            row = c.execute(select(batches.c.id).where(batches.c.id == batch_id)).first()
            if row is None:
                c.execute(
                    insert(batches).values(
                        id=batch_id,
                        source=source,
                        output_dir=output_dir,
                        options=options,
                        created_at=time.time(),
                    )
                )
            else:
                c.execute(
                    update(batches)
                    .where(batches.c.id == batch_id)
                    .values(output_dir=output_dir, options=options)
                )

    def record_balance(self, batch_id: str, balance: float) -> None:
        """Note the account balance: the first reading of a batch is kept, the latest is updated."""
        with self.engine.begin() as c:
            c.execute(
                update(batches)
                .where(batches.c.id == batch_id)
                .values(balance_start=func.coalesce(batches.c.balance_start, balance), balance_end=balance)
            )

    def batch(self, batch_id: str) -> Record | None:
        with self.engine.connect() as c:
            return _first(c.execute(select(batches).where(batches.c.id == batch_id)))

    def set_paused(self, batch_id: str, reason: str | None) -> None:
        with self.engine.begin() as c:
            c.execute(update(batches).where(batches.c.id == batch_id).values(paused_reason=reason))

    # -- jobs ---------------------------------------------------------------------------------------
    def add_jobs(self, batch_id: str | None, new_jobs: Sequence[NewJob]) -> list[str]:
        """Insert jobs not already present (by batch, row key and step); return every job's id in order."""
        ids: list[str] = []
        now = time.time()
        with self.engine.begin() as c:
            for job in new_jobs:
                if job.row_key is not None:
                    found = c.execute(
                        select(jobs.c.id).where(
                            jobs.c.batch_id == batch_id,
                            jobs.c.row_key == job.row_key,
                            jobs.c.step == job.step,
                        )
                    ).first()
                    if found is not None:
                        ids.append(found[0])
                        continue
                job_id = uuid.uuid4().hex
                parent = job.parent_job_id
                if parent is None and job.step > 0 and job.row_key is not None:
                    previous = c.execute(
                        select(jobs.c.id).where(
                            jobs.c.batch_id == batch_id,
                            jobs.c.row_key == job.row_key,
                            jobs.c.step == job.step - 1,
                        )
                    ).first()
                    parent = previous[0] if previous else None
                c.execute(
                    insert(jobs).values(
                        id=job_id,
                        batch_id=batch_id,
                        row_key=job.row_key,
                        row_line=job.row_line,
                        step=job.step,
                        parent_job_id=parent,
                        relation=job.relation,
                        model=job.model,
                        input=job.input,
                        input_hash=input_hash(job.model, job.input),
                        pending_input=job.pending_input,
                        output_name=job.output_name,
                        prompt=_prompt_of(job.input),
                        state=PENDING,
                        callback_token=secrets.token_urlsafe(24),
                        claim_seq=0,
                        estimated_credits=job.estimated_credits,
                        created_at=now,
                    )
                )
                self._event(c, job_id, None, PENDING, {"row": job.row_key, "line": job.row_line})
                ids.append(job_id)
        return ids

    def job(self, job_id: str) -> Record | None:
        with self.engine.connect() as c:
            return _first(c.execute(select(jobs).where(jobs.c.id == job_id)))

    def job_by_token(self, token: str) -> Record | None:
        """The job whose callback URL carries `token` (unguessable, one per job)."""
        with self.engine.connect() as c:
            return _first(c.execute(select(jobs).where(jobs.c.callback_token == token)))

    def find(self, prefix: str) -> Record | None:
        """A job by id, id prefix or task id: what a user types."""
        with self.engine.connect() as c:
            exact = _first(c.execute(select(jobs).where((jobs.c.id == prefix) | (jobs.c.task_id == prefix))))
            if exact is not None:
                return exact
            hits = _all(c.execute(select(jobs).where(jobs.c.id.like(f"{prefix}%")).limit(2)))
            return hits[0] if len(hits) == 1 else None

    def jobs(
        self, *, batch_id: str | None = None, states: Iterable[str] | None = None, limit: int | None = None
    ) -> list[Record]:
        query = _select_jobs(batch_id, states)
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as c:
            return _all(c.execute(query))

    def iter_jobs(
        self, *, batch_id: str, states: Iterable[str] | None = None, page: int = 500
    ) -> Iterator[tuple[Record, list[Record]]]:
        """Each job of a batch with its files, read a page at a time: a 100,000-row batch never sits
        in memory at once."""
        query = _select_jobs(batch_id, states)
        offset = 0
        while True:
            with self.engine.connect() as c:
                batch = _all(c.execute(query.offset(offset).limit(page)))
                ids = [job["id"] for job in batch]
                owned: dict[str, list[Record]] = {i: [] for i in ids}
                for item in _all(
                    c.execute(
                        select(files).where(files.c.job_id.in_(ids)).order_by(files.c.job_id, files.c.idx)
                    )
                ):
                    owned[item["job_id"]].append(item)
            yield from ((job, owned[job["id"]]) for job in batch)
            if len(batch) < page:
                return
            offset += page

    def ready_ids(self, batch_id: str) -> list[str]:
        """Pending jobs that can be submitted now: first steps, and steps whose parent is done."""
        parent = jobs.alias("parent")
        query = (
            select(jobs.c.id)
            .outerjoin(parent, parent.c.id == jobs.c.parent_job_id)
            .where(
                jobs.c.batch_id == batch_id,
                jobs.c.state == PENDING,
                (jobs.c.parent_job_id.is_(None)) | (parent.c.state == DONE),
            )
            .order_by(*_ROW_ORDER)
        )
        with self.engine.connect() as c:
            return list(c.execute(query).scalars())

    def last_event_id(self) -> int:
        with self.engine.connect() as c:
            return int(c.execute(select(func.coalesce(func.max(events.c.id), 0))).scalar_one())

    def left_running(self, batch_id: str, after: int) -> tuple[int, list[str]]:
        """Jobs of the batch that moved out of `running` after event `after` (a callback receiver in
        another process settled them); returns the newest event id seen and the job ids."""
        query = (
            select(events.c.id, events.c.job_id)
            .join(jobs, jobs.c.id == events.c.job_id)
            .where(
                events.c.id > after,
                events.c.from_state == RUNNING,
                events.c.to_state != RUNNING,
                jobs.c.batch_id == batch_id,
            )
            .order_by(events.c.id)
        )
        with self.engine.connect() as c:
            found = c.execute(query).all()
        return (found[-1][0] if found else after), [job_id for _, job_id in found]

    def children_of(self, job_id: str, *, states: Iterable[str]) -> list[Record]:
        query = select(jobs).where(jobs.c.parent_job_id == job_id, jobs.c.state.in_(list(states)))
        with self.engine.connect() as c:
            return _all(c.execute(query))

    def counts(self, batch_id: str | None = None) -> dict[str, int]:
        query = select(jobs.c.state, func.count()).group_by(jobs.c.state)
        if batch_id is not None:
            query = query.where(jobs.c.batch_id == batch_id)
        with self.engine.connect() as c:
            return {state: int(n) for state, n in c.execute(query).all()}

    def spend(self, batch_id: str | None = None) -> tuple[float, float]:
        """(credits spent on finished work, credits committed to work in flight) for budget checks."""
        base = select(func.coalesce(func.sum(_COST), 0.0))
        if batch_id is not None:
            base = base.where(jobs.c.batch_id == batch_id)
        with self.engine.connect() as c:
            spent = c.execute(base.where(jobs.c.state.in_([SUCCEEDED, DONE]))).scalar_one()
            flight = c.execute(base.where(jobs.c.state.in_([SUBMITTING, RUNNING, UNKNOWN]))).scalar_one()
        return float(spent), float(flight)

    # -- transitions ----------------------------------------------------------------------------------
    def _event(
        self, c: Connection, job_id: str, old: str | None, new: str, detail: dict[str, Any] | None = None
    ) -> None:
        c.execute(
            insert(events).values(job_id=job_id, at=time.time(), from_state=old, to_state=new, detail=detail)
        )

    def _move(
        self,
        c: Connection,
        job: Record,
        new: str,
        detail: dict[str, Any] | None = None,
        **values: Any,
    ) -> bool:
        result = c.execute(
            update(jobs)
            .where(
                and_(
                    jobs.c.id == job["id"], jobs.c.state == job["state"], jobs.c.claim_seq == job["claim_seq"]
                )
            )
            .values(state=new, **values)
        )
        if result.rowcount != 1:
            return False
        self._event(c, job["id"], job["state"], new, detail)
        return True

    def transition(
        self,
        job_id: str,
        old: str | Sequence[str],
        new: str,
        detail: dict[str, Any] | None = None,
        **values: Any,
    ) -> bool:
        """Move a job from `old` to `new` if it is still there; False when someone else moved it first."""
        allowed = (old,) if isinstance(old, str) else tuple(old)
        with self.engine.begin() as c:
            job = _first(c.execute(select(jobs).where(jobs.c.id == job_id)))
            if job is None or job["state"] not in allowed:
                return False
            return self._move(c, job, new, detail, **values)

    def claim_for_submit(
        self,
        job_id: str,
        lease_seconds: float,
        values: dict[str, Any] | None = None,
        *,
        budget: float | None = None,
    ) -> Record | None:
        """pending → submitting, committed before any byte is sent. Returns the claimed row.

        With a `budget`, the claim is refused (`BudgetExceededError`) when the batch's spent credits,
        plus those in flight, plus this job's estimate would pass it. The check and the claim are one
        transaction serialized on the batch row, so concurrent workers cannot overshoot together.
        """
        with self.engine.begin() as c:
            job = _first(c.execute(select(jobs).where(jobs.c.id == job_id)))
            if job is None or job["state"] != PENDING:
                return None
            if budget is not None and job["batch_id"] is not None:
                c.execute(select(batches.c.id).where(batches.c.id == job["batch_id"]).with_for_update())
                committed = c.execute(
                    select(func.coalesce(func.sum(_COST), 0.0)).where(
                        jobs.c.batch_id == job["batch_id"], jobs.c.state.in_(_COMMITTED)
                    )
                ).scalar_one()
                cost = job["estimated_credits"] or 0.0
                if float(committed) + cost > budget + 1e-9:
                    raise BudgetExceededError(
                        f"Submitting job {job_id} ({cost:g} credits) would pass the budget of {budget:g} "
                        f"credits ({float(committed):g} already spent or in flight).",
                        spent=float(committed),
                        limit=budget,
                        job_id=job_id,
                    )
            extra: dict[str, Any] = {
                "claim_seq": job["claim_seq"] + 1,
                "lease_owner": self.owner,
                "lease_until": time.time() + lease_seconds,
                "submitted_at": time.time(),
            }
            if values is not None:
                extra["input"] = values
                extra["input_hash"] = input_hash(job["model"], values)
            if not self._move(c, job, SUBMITTING, {"owner": self.owner}, **extra):
                return None
            return _first(c.execute(select(jobs).where(jobs.c.id == job_id)))

    def mark_running(self, job: Record, task_id: str) -> bool:
        with self.engine.begin() as c:
            return self._move(
                c, job, RUNNING, {"task_id": task_id}, task_id=task_id, lease_owner=None, lease_until=None
            )

    def release(self, job: Record, reason: str) -> bool:
        """submitting → pending, only for a create Kie certainly refused (nothing was created)."""
        with self.engine.begin() as c:
            return self._move(
                c,
                job,
                PENDING,
                {"released": reason},
                lease_owner=None,
                lease_until=None,
                error_message=reason,
            )

    def expire_leases(self, batch_id: str | None = None) -> int:
        """`submitting` rows whose lease ran out (a crashed worker) become `unknown`: never resent."""
        moved = 0
        for job in self.jobs(batch_id=batch_id, states=[SUBMITTING]):
            alive = job["lease_until"] is not None and job["lease_until"] > time.time()
            if alive and not _owner_is_dead(job["lease_owner"]):
                continue
            with self.engine.begin() as c:
                if self._move(
                    c,
                    job,
                    UNKNOWN,
                    {"reason": "lease expired while submitting"},
                    error_message="the create may or may not have reached Kie (worker stopped mid-send)",
                ):
                    moved += 1
        return moved

    def record_files(self, job_id: str, saved: Sequence[Mapping[str, Any]]) -> None:
        with self.engine.begin() as c:
            for index, item in enumerate(saved, start=1):
                exists = c.execute(
                    select(files.c.id).where(files.c.job_id == job_id, files.c.idx == index)
                ).first()
                if exists is None:
                    c.execute(insert(files).values(job_id=job_id, idx=index, **item))

    def files_of(self, job_id: str) -> list[Record]:
        with self.engine.connect() as c:
            return _all(c.execute(select(files).where(files.c.job_id == job_id).order_by(files.c.idx)))

    def events_of(self, job_id: str) -> list[Record]:
        with self.engine.connect() as c:
            return _all(c.execute(select(events).where(events.c.job_id == job_id).order_by(events.c.id)))

    # -- the shared create limiter ----------------------------------------------------------------------
    def reserve_slot(self, name: str, interval: float) -> float:
        """Reserve the next create slot across every process sharing this store; return seconds to wait.

        A durable "next allowed time" (GCRA without burst): a restart after a crash cannot burst, and two
        workers on one account together stay at one create per `interval`.
        """
        if interval <= 0:
            return 0.0
        with self.engine.begin() as c:
            now = time.time()
            row = c.execute(
                select(limiters.c.next_at).where(limiters.c.name == name).with_for_update()
            ).first()
            if row is None:
                c.execute(insert(limiters).values(name=name, next_at=now + interval))
                return 0.0
            slot = max(now, float(row[0]))
            c.execute(update(limiters).where(limiters.c.name == name).values(next_at=slot + interval))
            return slot - now


def _owner_is_dead(owner: str | None) -> bool:
    """True when the lease belongs to a process on this host that no longer exists (it crashed)."""
    host, _, rest = (owner or "").partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    if int(pid_text) == os.getpid():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _prompt_of(values: Mapping[str, Any]) -> str | None:
    for key in ("prompt", "text", "content"):
        value = values.get(key)
        if isinstance(value, str):
            return value[:2000]
    return None
