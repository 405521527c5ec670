"""Turns a model's price rule and an input into credits, or into an honest "unknown".

An unknown price is never 0: a budget that counted unknown prices as free would be no budget at all.
Every estimate says how it was reached, so a user can check it against Kie's pricing page.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kie.catalog.spec import ModelSpec, Offer, PriceRule

DEFAULT_USD_PER_CREDIT = 0.005  # kie-api.md §9.2: credits x 0.005 matches every observed USD price.


@dataclass(frozen=True)
class Estimate:
    """Credits for `count` tasks of one model. `credits is None` means unknown, with `basis` saying why."""

    model: str
    credits_each: float | None
    count: int
    basis: str
    source: str | None = None

    @property
    def known(self) -> bool:
        return self.credits_each is not None

    @property
    def credits(self) -> float | None:
        return None if self.credits_each is None else self.credits_each * self.count

    def usd(self, usd_per_credit: float = DEFAULT_USD_PER_CREDIT) -> float | None:
        return None if self.credits is None else self.credits * usd_per_credit


def _key_part(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _units(rule: PriceRule, values: Mapping[str, Any]) -> tuple[float | None, str]:
    raw = values.get(rule.units_field) if rule.units_field else None
    if raw is None:
        raw = rule.units_default
    try:
        units = float(raw) if raw is not None else None
    except (TypeError, ValueError):
        units = None
    unit_name = "s" if rule.per == "second" else " outputs"
    if units is None or units <= 0:
        # A duration of 0 means "match the source" for some models: the price then depends on a file.
        return None, f"price is per {rule.per} and `{rule.units_field}` gives no usable amount"
    return units, f"x {_key_part(units)}{unit_name}"


def today() -> _dt.date:
    return _dt.datetime.now(_dt.timezone.utc).date()


def offer_active(offer: Offer, on: _dt.date | None = None) -> bool:
    return (on or today()) <= _dt.date.fromisoformat(offer.ends)


def _offer_base(offer: Offer, key: str | None) -> float | None:
    if offer.table is not None:
        return offer.table.get(key) if key is not None else None
    return offer.credits


def price_of(
    rule: PriceRule, values: Mapping[str, Any], *, on: _dt.date | None = None
) -> tuple[float | None, str]:
    """Credits for one task under `rule`, with a short explanation.

    A running offer replaces the regular price for the keys it covers; an ended one is ignored here
    (and reported by `kie models check`), so a stale discount never lowers an estimate."""
    key: str | None = None
    shown = ""
    if rule.table is not None:
        parts = [_key_part(values.get(name)) for name in rule.by]
        key = "|".join(parts)
        found = rule.table.get(key)
        shown = " for " + ", ".join(f"{n}={p}" for n, p in zip(rule.by, parts, strict=False))
        if found is None:
            return None, f"no known price{shown}"
        base = found
    else:
        assert rule.credits is not None
        base = rule.credits
    offer_text = ""
    if rule.offer is not None and offer_active(rule.offer, on):
        discounted = _offer_base(rule.offer, key)
        if discounted is not None:
            base = discounted
            offer_text = f" (offer until {rule.offer.ends})"
    basis = f"{_key_part(base)} credits{shown}{offer_text}"
    if rule.per == "task":
        return base, basis
    if rule.per == "input-second":
        return None, f"{basis} per second of the input media, whose length is not known before submit"
    units, unit_basis = _units(rule, values)
    if units is None:
        return None, unit_basis
    return base * units, f"{basis} {unit_basis}"


def rule_values(rule: PriceRule, *, on: _dt.date | None = None) -> set[float]:
    """Every per-unit credit figure `rule` can charge now: what a published price is compared with."""
    values = set(rule.table.values()) if rule.table is not None else {float(rule.credits or 0)}
    offer = rule.offer
    if offer is not None and offer_active(offer, on):
        values |= set(offer.table.values()) if offer.table is not None else {offer.credits or 0}
    return {float(v) for v in values}


def estimate(
    model: ModelSpec,
    values: Mapping[str, Any],
    *,
    count: int = 1,
    override: PriceRule | None = None,
) -> Estimate:
    """Estimate `count` tasks. `values` should already carry defaults (see `validate`)."""
    rule = override or model.price
    if rule is None:
        return Estimate(model.id, None, count, "no published price for this model", None)
    merged = {name: spec.default for name, spec in model.fields.items() if spec.default is not None}
    merged.update(values)
    merged.update(model.endpoint.fixed)
    credits, basis = price_of(rule, merged)
    source = "your price override" if override is not None else rule.source
    return Estimate(model.id, credits, count, basis, source)
