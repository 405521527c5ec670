"""What the gallery reads from the ledger: pages of cards, one job's detail, a batch's matrix, spend.

Pages are keyset pages on (created_at, id), newest first, walking `ix_kie_jobs_created` from the last
card seen: no OFFSET, so the thousandth page costs what the first one does. Filters are parsed here,
once, from the URL's query string, so a view is shareable and the back button restores it.

Prompt search uses the database's own full-text search. On PostgreSQL that is `to_tsvector`; on
SQLite an FTS5 index kept beside the ledger (not in it), filled from the ledger's new rows before each
search. Keeping it outside leaves the runner's insert path and the ledger's schema untouched.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import (
    ColumnElement,
    Engine,
    Float,
    Select,
    and_,
    case,
    cast,
    create_engine,
    event,
    func,
    literal,
    literal_column,
    or_,
    select,
    text,
    tuple_,
)
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError

from kie.errors import ValidationError
from kie.store import STATES, Ledger, Record
from kie.store.schema import batches, events, files, jobs, marks

PAGE = 48
COUNT_CAP = 10_000
CHOICES_TTL = 10.0
MEDIA_KINDS = ("image", "video", "audio")
# What a job cost or will cost: Kie's charge when known, else the estimate.
COST = func.coalesce(jobs.c.actual_credits, jobs.c.estimated_credits)
# States in which credits were (or may have been) committed: the spend page counts only these.
COMMITTED = ("submitting", "running", "succeeded", "done", "unknown")
_TOKEN = re.compile(r"\w+", re.UNICODE)
_CARD_COLUMNS = (
    jobs.c.id,
    jobs.c.batch_id,
    jobs.c.row_key,
    jobs.c.model,
    jobs.c.prompt,
    jobs.c.state,
    jobs.c.estimated_credits,
    jobs.c.actual_credits,
    jobs.c.cost_time,
    jobs.c.created_at,
    jobs.c.submitted_at,
    jobs.c.completed_at,
    jobs.c.error_message,
    jobs.c.parent_job_id,
    jobs.c.relation,
    func.coalesce(marks.c.starred, False).label("starred"),
    func.coalesce(marks.c.rejected, False).label("rejected"),
    func.coalesce(marks.c.archived, False).label("archived"),
    marks.c.tags,
)


@dataclass(frozen=True)
class Filters:
    """A gallery view, as the URL's query string names it."""

    model: str | None = None
    media: str | None = None
    state: str | None = None
    batch: str | None = None
    since: dt.date | None = None
    until: dt.date | None = None
    min_credits: float | None = None
    max_credits: float | None = None
    starred: bool = False
    archived: bool = False
    q: str | None = None

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> Filters:
        """Filters from a query string; a bad value is one sentence naming the field and what it takes."""

        def value(name: str) -> str | None:
            raw = params.get(name)
            return raw.strip() or None if isinstance(raw, str) else None

        media = value("media")
        if media is not None and media not in MEDIA_KINDS:
            raise ValidationError(
                f"The filter media={media!r} is not one of {', '.join(MEDIA_KINDS)}; pick one."
            )
        state = value("state")
        if state is not None and state not in STATES:
            raise ValidationError(f"The filter state={state!r} is not one of {', '.join(STATES)}; pick one.")
        return cls(
            model=value("model"),
            media=media,
            state=state,
            batch=value("batch"),
            since=_date(value("since"), "since"),
            until=_date(value("until"), "until"),
            min_credits=_number(value("min_credits"), "min_credits"),
            max_credits=_number(value("max_credits"), "max_credits"),
            starred=value("starred") in ("1", "true", "on", "yes"),
            archived=value("archived") in ("1", "true", "on", "yes"),
            q=(value("q") or "")[:200] or None,
        )

    def query(self, **changes: Any) -> str:
        """This view's query string (with `changes`), empty fields left out: the URL a link shares."""
        view = replace(self, **changes) if changes else self
        pairs: list[tuple[str, str]] = []
        for name in ("model", "media", "state", "batch", "since", "until", "min_credits", "max_credits", "q"):
            item = getattr(view, name)
            if item is not None:
                pairs.append((name, f"{item:g}" if isinstance(item, float) else str(item)))
        if view.starred:
            pairs.append(("starred", "1"))
        if view.archived:
            pairs.append(("archived", "1"))
        return urlencode(pairs)

    @property
    def active(self) -> bool:
        return bool(self.query())


def _date(raw: str | None, name: str) -> dt.date | None:
    if raw is None:
        return None
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise ValidationError(
            f"The filter {name}={raw!r} is not a date; use YYYY-MM-DD, e.g. 2026-12-31."
        ) from None


def _number(raw: str | None, name: str) -> float | None:
    if raw is None:
        return None
    try:
        number = float(raw)
    except ValueError:
        number = float("nan")
    if number != number or number < 0:
        raise ValidationError(
            f"The filter {name}={raw!r} is not a number of credits; use 0 or more, e.g. 10."
        )
    return number


def _day_start(day: dt.date) -> float:
    return dt.datetime.combine(day, dt.time.min).astimezone().timestamp()


@dataclass
class Card:
    job: Record
    files: list[Record] = field(default_factory=list)

    @property
    def cover(self) -> Record | None:
        return self.files[0] if self.files else None


@dataclass
class Page:
    cards: list[Card]
    cursor: str | None  # where the next page starts; None on the last page


def encode_cursor(job: Record) -> str:
    return f"{float(job['created_at'])!r}~{job['id']}"


def decode_cursor(raw: str) -> tuple[float, str]:
    stamp, sep, job_id = raw.partition("~")
    try:
        if not sep or not re.fullmatch(r"[0-9a-zA-Z_-]{1,64}", job_id):
            raise ValueError(raw)
        return float(stamp), job_id
    except ValueError:
        raise ValidationError(
            "The page cursor is not one this gallery made; reload the page to start again from the top."
        ) from None


def fts_terms(text_query: str) -> list[str]:
    return _TOKEN.findall(text_query.lower())[:16]


class Gallery:
    """The gallery's reads over one ledger; thread-safe like the ledger itself."""

    def __init__(self, ledger: Ledger, index_dir: Path | None = None) -> None:
        self.ledger = ledger
        self.dialect = ledger.engine.dialect.name
        self._sync_lock = threading.Lock()
        self._choices: tuple[float, dict[str, list[str]]] | None = None
        self.engine: Engine = ledger.engine
        if self.dialect == "sqlite":
            self.engine = _search_engine(ledger.url, index_dir)

    def close(self) -> None:
        if self.engine is not self.ledger.engine:
            self.engine.dispose()

    def _read(self) -> Connection:
        if self.engine is self.ledger.engine:
            return self.ledger._read()
        return self.engine.connect()

    # -- search ---------------------------------------------------------------------------------
    def sync_search(self) -> int:
        """Add the ledger's jobs written since the last search to the SQLite index; returns how many.

        The index shares the ledger's row ids, and a job's prompt never changes once written, so new
        rows are all there is to catch up on. A ledger whose row ids no longer match (restored from a
        backup, or renumbered by VACUUM) is indexed again from scratch."""
        if self.dialect != "sqlite":
            return 0
        with self._sync_lock, self.engine.begin() as c:
            indexed = int(
                c.exec_driver_sql("SELECT coalesce(max(rowid), 0) FROM gallery.search").scalar_one()
            )
            top = int(c.exec_driver_sql("SELECT coalesce(max(rowid), 0) FROM main.kie_jobs").scalar_one())
            if indexed:
                ours = c.exec_driver_sql(
                    "SELECT job_id FROM gallery.search WHERE rowid = ?", (indexed,)
                ).scalar()
                theirs = c.exec_driver_sql(
                    "SELECT id FROM main.kie_jobs WHERE rowid = ?", (indexed,)
                ).scalar()
                if ours != theirs:
                    c.exec_driver_sql("DELETE FROM gallery.search")
                    indexed = 0
            if top == indexed:
                return 0
            result = c.exec_driver_sql(
                "INSERT INTO gallery.search(rowid, job_id, prompt) "
                "SELECT rowid, id, coalesce(prompt, '') FROM main.kie_jobs WHERE rowid > ?",
                (indexed,),
            )
            return int(result.rowcount)

    def _matches(self, text_query: str) -> ColumnElement[bool]:
        terms = fts_terms(text_query)
        if not terms:
            return literal(True)
        if self.dialect == "sqlite":
            self.sync_search()
            expression = " ".join(f'"{term}"*' for term in terms)
            hits: Select[Any] = (
                select(literal_column("rowid"))
                .select_from(text("gallery.search"))
                .where(text("search MATCH :fts").bindparams(fts=expression))
            )
            return literal_column("kie_jobs.rowid").in_(hits)
        if self.dialect == "postgresql":
            expression = " & ".join(f"{term}:*" for term in terms)
            config: ColumnElement[Any] = literal_column("'simple'::regconfig")
            vector = func.to_tsvector(config, func.coalesce(jobs.c.prompt, ""))
            return vector.op("@@")(func.to_tsquery(config, expression))
        return and_(*(jobs.c.prompt.ilike(f"%{term}%") for term in terms))

    # -- the grid -------------------------------------------------------------------------------
    def _where(self, filters: Filters) -> list[ColumnElement[bool]]:
        clauses: list[ColumnElement[bool]] = []
        if filters.model:
            clauses.append(jobs.c.model == filters.model)
        if filters.media:
            from kie import catalog

            ids = [spec.id for spec in catalog.search(kind=filters.media)]
            clauses.append(jobs.c.model.in_(ids))
        if filters.state:
            clauses.append(jobs.c.state == filters.state)
        if filters.batch:
            clauses.append(jobs.c.batch_id == filters.batch)
        if filters.since:
            clauses.append(jobs.c.created_at >= _day_start(filters.since))
        if filters.until:
            clauses.append(jobs.c.created_at < _day_start(filters.until + dt.timedelta(days=1)))
        if filters.min_credits is not None:
            clauses.append(filters.min_credits <= COST)
        if filters.max_credits is not None:
            clauses.append(filters.max_credits >= COST)
        if filters.starred:
            clauses.append(marks.c.starred.is_(True))
        if filters.archived:
            clauses.append(marks.c.archived.is_(True))
        else:
            clauses.append(or_(marks.c.archived.is_(None), marks.c.archived.is_(False)))
        if filters.q:
            clauses.append(self._matches(filters.q))
        return clauses

    def page(self, filters: Filters, cursor: str | None = None, limit: int = PAGE) -> Page:
        """One page of cards, newest first, starting after `cursor`."""
        query: Select[Any] = (
            select(*_CARD_COLUMNS)
            .select_from(jobs.outerjoin(marks, marks.c.job_id == jobs.c.id))
            .where(*self._where(filters))
            .order_by(jobs.c.created_at.desc(), jobs.c.id.desc())
            .limit(limit + 1)
        )
        if cursor:
            query = query.where(tuple_(jobs.c.created_at, jobs.c.id) < tuple_(*decode_cursor(cursor)))
        with self._read() as c:
            rows = [dict(row) for row in c.execute(query).mappings()]
            more = len(rows) > limit
            rows = rows[:limit]
            owned = self._files(c, [row["id"] for row in rows])
        cards = [Card(row, owned.get(row["id"], [])) for row in rows]
        return Page(cards, encode_cursor(rows[-1]) if more and rows else None)

    def _files(self, c: Connection, ids: Sequence[str]) -> dict[str, list[Record]]:
        owned: dict[str, list[Record]] = {}
        if not ids:
            return owned
        query = select(files).where(files.c.job_id.in_(list(ids))).order_by(files.c.job_id, files.c.idx)
        for item in c.execute(query).mappings():
            owned.setdefault(item["job_id"], []).append(dict(item))
        return owned

    def count(self, filters: Filters, cap: int = COUNT_CAP) -> int:
        """How many jobs the view holds, counted up to `cap` (the page says "10,000+" beyond): an exact
        count of a huge ledger would cost more than the page itself."""
        matching = (
            select(jobs.c.id)
            .select_from(jobs.outerjoin(marks, marks.c.job_id == jobs.c.id))
            .where(*self._where(filters))
            .limit(cap + 1)
            .subquery()
        )
        with self._read() as c:
            return int(c.execute(select(func.count()).select_from(matching)).scalar_one())

    def choices(self) -> dict[str, list[str]]:
        """The models and batches the filter bar offers (what the ledger holds, not the catalogue),
        read again at most every `CHOICES_TTL` seconds: a full pass over the jobs per page is too much."""
        now = time.monotonic()
        if self._choices is not None and now - self._choices[0] < CHOICES_TTL:
            return self._choices[1]
        with self._read() as c:
            models = list(c.execute(select(jobs.c.model).distinct().order_by(jobs.c.model)).scalars())
            found = c.execute(select(batches.c.id).order_by(batches.c.created_at.desc()).limit(200))
            fresh = {"models": models, "batches": list(found.scalars())}
        self._choices = (now, fresh)
        return fresh

    # -- one job --------------------------------------------------------------------------------
    def detail(self, job_id: str) -> dict[str, Any] | None:
        with self._read() as c:
            job = (
                c.execute(
                    select(jobs, *_CARD_COLUMNS[-4:])
                    .select_from(jobs.outerjoin(marks, marks.c.job_id == jobs.c.id))
                    .where(jobs.c.id == job_id)
                )
                .mappings()
                .first()
            )
            if job is None:
                return None
            job_files = self._files(c, [job_id]).get(job_id, [])
            timeline = [
                dict(row)
                for row in c.execute(
                    select(events).where(events.c.job_id == job_id).order_by(events.c.id)
                ).mappings()
            ]
            parent = None
            if job["parent_job_id"]:
                parent = (
                    c.execute(
                        select(jobs.c.id, jobs.c.model, jobs.c.state).where(jobs.c.id == job["parent_job_id"])
                    )
                    .mappings()
                    .first()
                )
            children = [
                dict(row)
                for row in c.execute(
                    select(jobs.c.id, jobs.c.model, jobs.c.state, jobs.c.relation)
                    .where(jobs.c.parent_job_id == job_id)
                    .order_by(jobs.c.created_at)
                    .limit(50)
                ).mappings()
            ]
        return {
            "job": dict(job),
            "files": job_files,
            "events": timeline,
            "parent": dict(parent) if parent else None,
            "children": children,
        }

    def file_by_sha(self, sha256: str) -> Record | None:
        """The newest file row with this hash (a file is addressed by its content, never by a path)."""
        query = select(files).where(files.c.sha256 == sha256).order_by(files.c.id.desc()).limit(1)
        with self._read() as c:
            row = c.execute(query).mappings().first()
        return dict(row) if row else None

    def cards(self, ids: Iterable[str]) -> dict[str, Card]:
        wanted = list(dict.fromkeys(ids))
        query = (
            select(*_CARD_COLUMNS)
            .select_from(jobs.outerjoin(marks, marks.c.job_id == jobs.c.id))
            .where(jobs.c.id.in_(wanted))
        )
        with self._read() as c:
            rows = [dict(row) for row in c.execute(query).mappings()]
            owned = self._files(c, wanted)
        return {row["id"]: Card(row, owned.get(row["id"], [])) for row in rows}

    # -- a --matrix batch ---------------------------------------------------------------------------
    def matrix(self, batch_id: str) -> dict[str, Any] | None:
        """A batch as prompts (rows) × models (columns), from the ledger's fields, with totals."""
        with self._read() as c:
            batch = c.execute(select(batches).where(batches.c.id == batch_id)).mappings().first()
            if batch is None:
                return None
            rows = [
                dict(row)
                for row in c.execute(
                    select(*_CARD_COLUMNS, jobs.c.row_line, jobs.c.step)
                    .select_from(jobs.outerjoin(marks, marks.c.job_id == jobs.c.id))
                    .where(jobs.c.batch_id == batch_id, jobs.c.step == 0)
                    .order_by(func.coalesce(jobs.c.row_line, -1), jobs.c.created_at, jobs.c.id)
                    .limit(5000)
                ).mappings()
            ]
            owned = self._files(c, [row["id"] for row in rows])
        options = dict(batch["options"] or {})
        columns = [str(m) for m in options.get("matrix_models") or []]
        for row in rows:
            if row["model"] not in columns:
                columns.append(row["model"])
        grid: dict[str, dict[str, Card]] = {}
        prompts: dict[str, str] = {}
        for row in rows:
            key = _matrix_row(row)
            prompts.setdefault(key, row["prompt"] or key)
            grid.setdefault(key, {})[row["model"]] = Card(row, owned.get(row["id"], []))
        row_totals = {key: _totals(cells.values()) for key, cells in grid.items()}
        column_totals = {
            model: _totals([cells[model] for cells in grid.values() if model in cells]) for model in columns
        }
        return {
            "batch": dict(batch),
            "columns": columns,
            "rows": list(grid),
            "prompts": prompts,
            "grid": grid,
            "row_totals": row_totals,
            "column_totals": column_totals,
            "total": _totals([card for cells in grid.values() for card in cells.values()]),
        }

    # -- spend --------------------------------------------------------------------------------------
    def spend(self, since: dt.date | None = None) -> dict[str, list[dict[str, Any]]]:
        """Credits by day, model and batch: estimated (what was committed) against charged (what Kie
        reported), plus each batch's account balance drop as the ledger noted it."""
        when = func.coalesce(jobs.c.submitted_at, jobs.c.created_at)
        day: ColumnElement[Any]
        if self.dialect == "postgresql":
            day = func.to_char(func.to_timestamp(when), "YYYY-MM-DD")
        else:
            day = func.date(when, "unixepoch", "localtime")
        committed = jobs.c.state.in_(COMMITTED)
        measures = (
            func.count().label("jobs"),
            func.coalesce(func.sum(jobs.c.estimated_credits), 0.0).label("estimated"),
            func.coalesce(func.sum(jobs.c.actual_credits), 0.0).label("charged"),
            func.coalesce(func.sum(COST), 0.0).label("cost"),
            func.sum(case((jobs.c.actual_credits.is_(None), 0), else_=1)).label("reported"),
        )
        where: list[ColumnElement[bool]] = [committed]
        if since is not None:
            where.append(when >= _day_start(since))
        out: dict[str, list[dict[str, Any]]] = {}
        with self._read() as c:
            out["day"] = _rows(
                c.execute(select(day.label("key"), *measures).where(*where).group_by(day).order_by(day))
            )
            out["model"] = _rows(
                c.execute(
                    select(jobs.c.model.label("key"), *measures)
                    .where(*where)
                    .group_by(jobs.c.model)
                    .order_by(func.sum(COST).desc())
                )
            )
            by_batch = (
                select(
                    jobs.c.batch_id.label("key"),
                    *measures,
                    func.max(cast(batches.c.balance_start, Float)).label("balance_start"),
                    func.max(cast(batches.c.balance_end, Float)).label("balance_end"),
                )
                .select_from(jobs.join(batches, batches.c.id == jobs.c.batch_id))
                .where(*where)
                .group_by(jobs.c.batch_id)
                .order_by(func.max(batches.c.created_at).desc())
                .limit(500)
            )
            out["batch"] = _rows(c.execute(by_batch))
        for row in out["batch"]:
            start, end = row.pop("balance_start"), row.pop("balance_end")
            row["balance_drop"] = start - end if start is not None and end is not None else None
        return out

    def sums(self, batch_prefix: str) -> tuple[float, float]:
        """(credits spent, credits in flight) by the batches whose id starts with `batch_prefix`."""
        settled = jobs.c.state.in_(("succeeded", "done"))
        flying = jobs.c.state.in_(("submitting", "running", "unknown", "pending"))
        query = select(
            func.coalesce(func.sum(case((settled, COST), else_=0.0)), 0.0),
            func.coalesce(func.sum(case((flying, COST), else_=0.0)), 0.0),
        ).where(jobs.c.batch_id.startswith(batch_prefix, autoescape=True))
        with self._read() as c:
            spent, flight = c.execute(query).one()
        return float(spent or 0.0), float(flight or 0.0)


def _rows(result: Any) -> list[dict[str, Any]]:
    return [dict(row) for row in result.mappings()]


def _matrix_row(job: Record) -> str:
    """The prompt a matrix cell belongs to: the row key without the `@model` the planner adds."""
    key = str(job["row_key"] or job["id"])
    suffix = f"@{job['model']}"
    return key[: -len(suffix)] if key.endswith(suffix) else key


def _totals(cards: Iterable[Card]) -> dict[str, Any]:
    credits = 0.0
    seconds = 0.0
    count = 0
    unknown = 0
    for card in cards:
        count += 1
        cost = (
            card.job["actual_credits"]
            if card.job["actual_credits"] is not None
            else card.job["estimated_credits"]
        )
        if cost is None:
            unknown += 1
        else:
            credits += float(cost)
        seconds += float(card.job["cost_time"] or 0.0)
    return {"jobs": count, "credits": credits, "seconds": seconds, "unknown": unknown}


def _search_engine(url: str, index_dir: Path | None) -> Engine:
    """An engine on the SQLite ledger with the gallery's search index attached as `gallery`.

    Its own engine, not the ledger's: the ledger's connections begin IMMEDIATE (a write lock), while
    the gallery only reads the ledger and writes its index."""
    database = make_url(url).database or ""
    folder = index_dir or (Path(database).parent / "gallery" if database not in ("", ":memory:") else None)
    if folder is None:
        index = ":memory:"
    else:
        folder.mkdir(parents=True, exist_ok=True)
        index = str(folder / "search.db")
    engine = create_engine(url)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("ATTACH DATABASE ? AS gallery", (index,))
        try:
            cursor.execute("PRAGMA gallery.journal_mode=WAL")
            cursor.execute(
                "CREATE VIRTUAL TABLE IF NOT EXISTS gallery.search USING "
                "fts5(job_id UNINDEXED, prompt, tokenize='unicode61 remove_diacritics 2')"
            )
        except Exception as exc:  # another connection created it at the same moment
            if "already exists" not in str(exc):
                raise
        cursor.close()

    try:
        with engine.connect():
            pass
    except DBAPIError as exc:
        from kie.errors import ConfigurationError

        raise ConfigurationError(
            f"The gallery could not open its search index at {index} ({str(exc.orig).strip()}); check that "
            "the folder is writable."
        ) from None
    return engine
