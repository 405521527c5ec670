"""The seeds' selection guide, driven by data.

Each use case in `usecases.json` weighs price, speed and quality and names the tags it prefers; each
model carries tiers and tags. A score is the weighted mean of three features in 0..1 plus a bonus per
matching tag, so changing advice means editing data. The escalation ladder ("try cheap first, then
upgrade") is a list per media kind in the same file.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from kie.catalog.loader import load
from kie.catalog.pricing import Estimate, estimate
from kie.catalog.spec import ModelSpec, PriceRule
from kie.errors import ValidationError

TAG_BONUS = 0.08
UNKNOWN_PRICE_SCORE = 0.25  # unknown is ranked low, never as if it were free


@dataclass(frozen=True)
class Recommendation:
    model: ModelSpec
    score: float
    estimate: Estimate
    reason: str


def _price_scores(prices: dict[str, float | None]) -> dict[str, float]:
    """Cheapest known price scores 1, dearest 0, on a log scale since prices span 0.4 to 600 credits."""
    known = [p for p in prices.values() if p is not None and p > 0]
    if not known:
        return {k: UNKNOWN_PRICE_SCORE for k in prices}
    low, high = math.log(min(known)), math.log(max(known))
    span = high - low or 1.0
    return {
        k: UNKNOWN_PRICE_SCORE if p is None or p <= 0 else 1.0 - (math.log(p) - low) / span
        for k, p in prices.items()
    }


def _credits_text(est: Estimate) -> str:
    if est.credits_each is None:
        return "price unknown"
    value = est.credits_each
    return f"{int(value) if float(value).is_integer() else value} credit{'' if value == 1 else 's'}"


def recommend(
    use_case: str,
    *,
    kind: str | None = None,
    capability: str | None = None,
    max_credits: float | None = None,
    limit: int = 8,
    overrides: Mapping[str, PriceRule] | None = None,
) -> list[Recommendation]:
    """Active models ranked for `use_case`, each with its default-input price and a one-line reason."""
    data = load()
    case = data.use_cases.get(use_case)
    if case is None:
        allowed = ", ".join(data.use_cases)
        raise ValidationError(f"Unknown use case {use_case!r}; choose one of {allowed}.")
    overrides = overrides or {}
    wanted_caps = {capability} if capability else set(case.capabilities)
    candidates: list[ModelSpec] = []
    for spec in data.models.values():
        if spec.status != "active" or (kind and spec.media != kind):
            continue
        if wanted_caps and not wanted_caps.intersection(spec.capabilities):
            continue
        if case.require_languages and not set(case.require_languages) <= set(spec.traits.languages):
            continue
        candidates.append(spec)

    estimates = {s.id: estimate(s, {}, override=overrides.get(s.id)) for s in candidates}
    if max_credits is not None:
        candidates = [
            s
            for s in candidates
            if estimates[s.id].credits_each is not None and estimates[s.id].credits_each <= max_credits  # type: ignore[operator]
        ]
    price_score = _price_scores({s.id: estimates[s.id].credits_each for s in candidates})
    total_weight = sum(case.weights.values()) or 1.0

    ranked: list[Recommendation] = []
    for spec in candidates:
        features: dict[Literal["price", "speed", "quality"], float] = {
            "price": price_score[spec.id],
            "speed": (spec.traits.speed - 1) / 4,
            "quality": (spec.traits.quality - 1) / 4,
        }
        matched = [t for t in case.prefer_tags if t in spec.traits.best_for]
        score = sum(case.weights.get(k, 0.0) * v for k, v in features.items()) / total_weight
        score += TAG_BONUS * len(matched)
        est = estimates[spec.id]
        details = [_credits_text(est), f"speed {spec.traits.speed}/5", f"quality {spec.traits.quality}/5"]
        if matched:
            details.append("good for " + ", ".join(matched))
        ranked.append(Recommendation(spec, round(score, 4), est, "; ".join(details)))
    ranked.sort(key=lambda r: (-r.score, r.estimate.credits_each or math.inf, r.model.id))
    return ranked[:limit]


def escalation(kind: str = "image") -> list[tuple[ModelSpec, Estimate]]:
    """The seeds' "try cheap first, then upgrade" ladder for a media kind, cheapest rung first."""
    data = load()
    ladder = data.escalation.get(kind, ())
    return [(data.models[m], estimate(data.models[m], {})) for m in ladder]
