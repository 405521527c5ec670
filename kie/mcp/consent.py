"""Consent the agent cannot give itself: prices, hard limits, the human's question and out-of-band quotes.

Order of the gate for a spending call (`generate`, `compare_models`):

1. Validate and price every job from the catalogue; an unknown price is refused, never counted as 0.
2. Hard limits from config or environment (read-only, the model allow-list, per call, per session,
   per day, the ledger's global budget): a refusal touches nothing.
3. A retried call whose idempotency key already has its jobs in the ledger spends nothing new.
4. At most `auto_approve_credits`: go ahead. Else a quote a human approved with `kie mcp approve`,
   used once. Else the human is asked through elicitation; a client that cannot ask gets a quote.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import insert, select, update

from kie import catalog
from kie.catalog.spec import ModelSpec
from kie.config import Settings
from kie.errors import KieError, ValidationError
from kie.mcp.limits import ENV, Limits
from kie.mcp.models import JobIn
from kie.protocol.files import safe_stem
from kie.store import Ledger
from kie.store.ledger import canonical
from kie.store.schema import quotes

BATCH_PREFIX = "mcp-"


class Confirm(BaseModel):
    """The one question a human answers (the elicitation form)."""

    approve: bool = Field(description="Approve this spend")


@dataclass(frozen=True)
class PlannedJob:
    position: int
    model: str
    media: str
    input: dict[str, Any]
    label: str | None
    credits: float | None
    basis: str

    @property
    def output_name(self) -> str:
        base = self.label or self.model.rsplit("/", 1)[-1]
        return f"{safe_stem(base)}-{self.position + 1}"


@dataclass
class Plan:
    """A priced request and the gate's view of it (recomputed on each round; it writes nothing)."""

    jobs: list[PlannedJob]
    batch_id: str
    request_hash: str
    key: str | None
    total: float | None
    unknown: list[str] = field(default_factory=list)
    existing: bool = False  # the key's jobs are already in the ledger: nothing new is spent
    refusal: str | None = None

    @property
    def media(self) -> set[str]:
        return {job.media for job in self.jobs}

    def summary(self) -> str:
        counts: dict[str, int] = {}
        for job in self.jobs:
            counts[job.model] = counts.get(job.model, 0) + 1
        return ", ".join(f"{n} × {model}" for model, n in counts.items())


@dataclass(frozen=True)
class SpendView:
    session: float
    today: float
    committed: float  # spent plus in flight across the whole ledger


def batch_id_for(key: str | None) -> str:
    """One batch per idempotency key: its rows are the job positions, unique in the ledger, so a
    retried call (also after a restart) finds them instead of creating new ones."""
    if key is None:
        return BATCH_PREFIX + secrets.token_hex(12)
    return BATCH_PREFIX + hashlib.sha256(key.encode("utf-8")).hexdigest()[:24]


def plan_jobs(jobs: Sequence[JobIn], settings: Settings) -> list[PlannedJob]:
    """Validated, priced jobs; a bad job raises one sentence naming its position."""
    planned = []
    for position, job in enumerate(jobs):
        try:
            spec: ModelSpec = catalog.get(job.model)
            checked = catalog.validate(spec, job.input, allow_local_files=False)
            est = catalog.estimate(spec, checked.input, overrides=settings.price_overrides)
        except KieError as exc:
            raise ValidationError(f"jobs[{position}] ({job.model}): {str(exc).rstrip('.')}.") from None
        planned.append(
            PlannedJob(
                position, spec.id, spec.media, dict(checked.input), job.label, est.credits_each, est.basis
            )
        )
    return planned


def request_hash(jobs: Sequence[PlannedJob]) -> str:
    """What a quote approves: exactly these jobs, in this order."""
    body = [{"model": j.model, "input": j.input, "label": j.label} for j in jobs]
    return hashlib.sha256(canonical({"jobs": body}).encode("utf-8")).hexdigest()


def make_plan(jobs: list[PlannedJob], key: str | None, ledger: Ledger) -> Plan:
    unknown = sorted({j.model for j in jobs if j.credits is None})
    total = None if unknown else sum(j.credits or 0.0 for j in jobs)
    digest = request_hash(jobs)
    batch_id = batch_id_for(key)
    plan = Plan(jobs, batch_id, digest, key, total, unknown)
    if key is not None:
        batch = ledger.batch(batch_id)
        if batch is not None:
            if (batch["options"] or {}).get("request_hash") != digest:
                raise ValidationError(
                    f"idempotency_key {key!r} was already used for a different request; send the same "
                    "jobs again to get their results, or use a new key for a new request."
                )
            plan.existing = True
    return plan


def refusal(plan: Plan, limits: Limits, view: SpendView) -> str | None:
    """The first hard limit the plan breaks, as one sentence for the agent; None when within all."""
    if limits.read_only:
        return (
            f"kie mcp is read-only ({ENV['read_only']} is set by the person who runs it), so nothing can "
            "be generated; search, estimate and read jobs instead."
        )
    barred = sorted({j.model for j in plan.jobs if not limits.allows_model(j.model)})
    if barred:
        return (
            f"{', '.join(barred)} is not among the allowed models ({ENV['models']}: "
            f"{', '.join(limits.models)}); choose an allowed model or ask the person who runs kie to "
            "allow it."
        )
    if plan.unknown:
        return (
            f"The price of {', '.join(plan.unknown)} is unknown for this input, and kie mcp spends only "
            "known amounts; choose a model or input with a price (estimate_cost shows it)."
        )
    total = plan.total or 0.0
    checks = (
        (limits.max_credits_per_call, 0.0, "per call", ENV["max_credits_per_call"]),
        (limits.max_credits_per_session, view.session, "for this session", ENV["max_credits_per_session"]),
        (limits.max_credits_per_day, view.today, "per day", ENV["max_credits_per_day"]),
        (limits.max_credits_total, view.committed, "in the ledger's budget", "KIE_MAX_CREDITS"),
    )
    for cap, used, scope, name in checks:
        if cap is not None and used + total > cap + 1e-9:
            already = f" ({used:g} already used)" if used else ""
            return (
                f"This call would spend {total:g} credits, over the limit of {cap:g} credits {scope}"
                f"{already}, set with {name}; ask for fewer or cheaper jobs, or ask the person who runs "
                "kie to raise the limit."
            )
    return None


def question(plan: Plan, usd_per_credit: float) -> str:
    """What the human is asked: built from the plan alone, so every round asks the same question."""
    total = plan.total or 0.0
    return (
        f"An agent wants to spend {total:g} credits (about ${total * usd_per_credit:.2f}) on "
        f"{plan.summary()}. Approve?"
    )


# -- quotes: approval out of band, short-lived, used once ---------------------------------------------
def find_open_quote(ledger: Ledger, digest: str, now: float) -> dict[str, Any] | None:
    """The newest unexpired, unused quote for exactly this request."""
    query = (
        select(quotes)
        .where(quotes.c.request_hash == digest, quotes.c.used_at.is_(None), quotes.c.expires_at > now)
        .order_by(quotes.c.created_at.desc())
        .limit(1)
    )
    with ledger.engine.connect() as c:
        row = c.execute(query).mappings().first()
    return None if row is None else dict(row)


def approved_quote(ledger: Ledger, digest: str) -> dict[str, Any] | None:
    quote = find_open_quote(ledger, digest, time.time())
    return quote if quote is not None and quote["approved_at"] is not None else None


def take_approved(ledger: Ledger, digest: str) -> bool:
    """Use the approval for this request, once: a compare-and-set, so two calls cannot share it."""
    quote = approved_quote(ledger, digest)
    if quote is None:
        return False
    with ledger.engine.begin() as c:
        used = c.execute(
            update(quotes)
            .where(quotes.c.id == quote["id"], quotes.c.used_at.is_(None))
            .values(used_at=time.time())
        )
        return used.rowcount == 1


def open_quote(ledger: Ledger, plan: Plan, ttl: float) -> dict[str, Any]:
    """A quote for the plan (the open one for the same request when there is one)."""
    now = time.time()
    found = find_open_quote(ledger, plan.request_hash, now)
    if found is not None and found["approved_at"] is None:
        return found
    row = {
        "id": secrets.token_hex(4),
        "request_hash": plan.request_hash,
        "request": {
            "jobs": [{"model": j.model, "input": j.input, "label": j.label} for j in plan.jobs],
            "summary": plan.summary(),
        },
        "credits": plan.total or 0.0,
        "created_at": now,
        "expires_at": now + ttl,
    }
    with ledger.engine.begin() as c:
        c.execute(insert(quotes).values(**row))
    return {**row, "approved_at": None, "used_at": None}


def approve_quote(ledger: Ledger, quote_id: str) -> dict[str, Any]:
    """Mark a quote approved (what `kie mcp approve` does); one sentence when it cannot be."""
    wanted = quote_id.strip().lower()
    with ledger.engine.begin() as c:
        row = c.execute(select(quotes).where(quotes.c.id == wanted)).mappings().first()
        if row is None:
            raise ValidationError(
                f"There is no quote {quote_id!r} in this ledger; copy the id the agent showed, and use the "
                "same --store or --sandbox as the kie mcp server."
            )
        quote = dict(row)
        if quote["used_at"] is not None:
            raise ValidationError(f"Quote {quote_id} was already used; the agent must ask again.")
        if quote["expires_at"] <= time.time():
            raise ValidationError(f"Quote {quote_id} has expired; the agent must ask again for a new one.")
        if quote["approved_at"] is None:
            now = time.time()
            c.execute(update(quotes).where(quotes.c.id == wanted).values(approved_at=now))
            quote["approved_at"] = now
    return quote
