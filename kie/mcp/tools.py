"""The catalogue as the agent sees it: search, one model's schema and price rule, advice, estimates.

Everything here is read-only and generated from `kie.catalog`, the one place a model is described,
so the agent's view cannot drift from what validation and pricing enforce. Maintainer-only fields
(where a fact came from) are left out.
"""

from __future__ import annotations

import json
from typing import Any

from kie import catalog
from kie.catalog.spec import FieldSpec, ModelSpec
from kie.config import Settings
from kie.errors import ValidationError
from kie.mcp.models import ModelCard, ModelDetail, Option, Recommendation

MEDIA = ("image", "video", "audio", "text")


def default_credits(spec: ModelSpec, settings: Settings) -> float | None:
    return catalog.estimate(spec, {}, overrides=settings.price_overrides).credits_each


def card(spec: ModelSpec, settings: Settings) -> ModelCard:
    return ModelCard(
        id=spec.id,
        name=spec.name,
        media=spec.media,
        capabilities=list(spec.capabilities),
        credits=default_credits(spec, settings),
        typical_seconds=spec.traits.typical_seconds,
        speed=spec.traits.speed,
        quality=spec.traits.quality,
        best_for=list(spec.traits.best_for),
    )


def _check_media(media: str | None) -> None:
    if media is not None and media not in MEDIA:
        raise ValidationError(f"media must be one of {', '.join(MEDIA)}, not {media!r}.")


def search(
    settings: Settings,
    *,
    query: str | None,
    media: str | None,
    capability: str | None,
    max_price: float | None,
    limit: int,
) -> list[ModelCard]:
    """Active models matching every filter; the cheapest known price first among equals in the
    query's relevance (a word in the id, name or best-for tags)."""
    _check_media(media)
    words = [w for w in (query or "").lower().split() if w]
    scored: list[tuple[int, float, str, ModelSpec]] = []
    for spec in catalog.search(kind=media, capability=capability, status=("active", "preview")):
        tags = " ".join((*spec.traits.best_for, *spec.capabilities))
        text = f"{spec.id} {spec.name} {spec.family} {tags}"
        hits = sum(1 for w in words if w in text.lower())
        if words and not hits:
            continue
        price = default_credits(spec, settings)
        if max_price is not None and (price is None or price > max_price):
            continue
        scored.append((-hits, price if price is not None else float("inf"), spec.id, spec))
    scored.sort(key=lambda item: item[:3])
    return [card(spec, settings) for *_, spec in scored[:limit]]


def _field(spec: FieldSpec) -> dict[str, Any]:
    types = list(spec.types)
    out: dict[str, Any] = {"type": types[0] if len(types) == 1 else types}
    for key in (
        "description",
        "enum",
        "default",
        "minimum",
        "maximum",
        "min_length",
        "max_length",
        "min_items",
        "max_items",
        "items",
        "media",
        "note",
    ):
        value = getattr(spec, key)
        if value is not None:
            out[key] = list(value) if isinstance(value, tuple) else value
    if spec.enum is not None and not spec.enum_complete:
        out["enum_examples_only"] = True
    return out


def detail(spec: ModelSpec, settings: Settings) -> ModelDetail:
    fields = {name: _field(f) for name, f in spec.fields.items()}
    schema = {
        "type": "object",
        "properties": fields,
        "required": [name for name, f in spec.fields.items() if f.required],
        "checked": spec.schema_published,
    }
    rule = settings.price_overrides.get(spec.id) or spec.price
    price = None
    if rule is not None:
        price = rule.model_dump(exclude={"source"}, exclude_none=True, exclude_defaults=True)
        price.setdefault("per", rule.per)
    return ModelDetail(
        id=spec.id,
        name=spec.name,
        media=spec.media,
        family=spec.family,
        status=spec.status,
        capabilities=list(spec.capabilities),
        input_schema=schema,
        price_rule=price,
        default_credits=default_credits(spec, settings),
        typical_seconds=spec.traits.typical_seconds,
        notes=list(spec.notes),
        docs_url=spec.docs_url,
    )


def recommend(
    settings: Settings, use_case: str, media: str | None, max_price: float | None
) -> Recommendation:
    _check_media(media)
    ranked = catalog.recommend(
        use_case, kind=media, max_credits=max_price, limit=4, overrides=settings.price_overrides
    )
    options = [Option(model=r.model.id, credits=r.estimate.credits_each, reason=r.reason) for r in ranked]
    ladder = [
        Option(model=spec.id, credits=est.credits_each, reason=f"{spec.name}: rung {n} of the ladder")
        for n, (spec, est) in enumerate(catalog.escalation(media or "image"), start=1)
        if max_price is None or (est.credits_each is not None and est.credits_each <= max_price)
    ]
    case = catalog.load().use_cases[use_case]
    return Recommendation(
        primary=options[0] if options else None,
        alternatives=options[1:],
        ladder=ladder,
        rationale=case.reason if options else f"No active model fits {use_case!r} within the price given.",
    )


def use_cases() -> list[str]:
    return list(catalog.load().use_cases)


def index_json(settings: Settings) -> str:
    rows = [
        {"id": s.id, "name": s.name, "media": s.media, "credits": default_credits(s, settings)}
        for s in catalog.all_models()
        if s.status != "deprecated"
    ]
    return json.dumps({"models": rows}, indent=1)


def selection_guide() -> str:
    data = catalog.load()
    lines = ["# Choosing a Kie model", "", "Use cases, and what each weighs:", ""]
    for name, case in data.use_cases.items():
        weights = ", ".join(f"{k} {v:g}" for k, v in case.weights.items())
        lines.append(f"- **{name}**: {case.description} ({weights}). {case.reason}.")
    lines += [
        "",
        "Escalation ladders, cheapest first (move up a rung when the result is not good enough):",
        "",
    ]
    for kind, ladder in data.escalation.items():
        lines.append(f"- {kind}: " + " → ".join(ladder))
    return "\n".join(lines) + "\n"


def pricing_guide(settings: Settings) -> str:
    return (
        "# How kie prices a request\n\n"
        "Prices are credits, from the catalogue's price rules: a flat price per task, a table by input "
        "(resolution, duration, …), or a rate per second or per output. One credit is about "
        f"${settings.usd_per_credit:g}. A price the catalogue does not know stays unknown, never 0, and "
        "kie mcp does not spend on an unknown price.\n\n"
        "Each spend is checked against the limits the person running kie set: an amount up to the "
        "auto-approve threshold goes ahead; above it, that person is asked (or approves a quote with "
        "`kie mcp approve`). Per-call, per-session, per-day and ledger-wide limits are hard: a request "
        "over one is refused before anything is sent. The budget resource shows them all.\n"
    )
