"""The model catalogue: every Kie.ai model as data, with validation and prices.

    >>> from kie import catalog
    >>> spec = catalog.get("Seedream V4")          # seed names and real ids both resolve
    >>> checked = catalog.validate(spec, {"prompt": "a red fox"})
    >>> catalog.estimate(spec, checked.input, n=100).credits

The data lives in `kie/catalog/data/` (one JSON file per model family); this module only reads it.
The sandbox, the client and the batch runner all call these functions, so no other part of kie keeps a
copy of a model's fields or price.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kie.catalog.loader import CatalogData, CatalogDataError, load
from kie.catalog.pricing import DEFAULT_USD_PER_CREDIT, Estimate
from kie.catalog.pricing import estimate as _estimate
from kie.catalog.recommend import Recommendation, escalation, recommend
from kie.catalog.spec import Alias, FieldSpec, ModelSpec, Preset, PriceRule, UseCase
from kie.catalog.validate import ValidatedInput
from kie.catalog.validate import validate as _validate
from kie.errors import UnknownModelError

__all__ = [
    "DEFAULT_USD_PER_CREDIT",
    "Alias",
    "CatalogData",
    "CatalogDataError",
    "Estimate",
    "FieldSpec",
    "ModelSpec",
    "Preset",
    "PriceRule",
    "Recommendation",
    "Resolved",
    "UseCase",
    "ValidatedInput",
    "aliases",
    "all_models",
    "escalation",
    "estimate",
    "get",
    "load",
    "presets",
    "recommend",
    "resolve",
    "search",
    "validate",
]


@dataclass(frozen=True)
class Resolved:
    """A model found by any of its names; `alias` is set when the name was not the real id."""

    model: ModelSpec
    alias: Alias | None = None
    name: str = ""


def _normalise(name: str) -> str:
    text = name.strip().lower()
    for prefix in ("https://api.kie.ai", "http://api.kie.ai", "api.kie.ai"):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    return text.split("?", 1)[0].rstrip("/")


def _alias_index() -> dict[str, tuple[str, Alias]]:
    return {_normalise(name): (name, alias) for name, alias in load().aliases.items()}


def resolve(name: str) -> Resolved:
    """Find a model by id, by a name the seeds or users use, or by an (often wrong) endpoint path."""
    data = load()
    if name in data.models:
        return Resolved(data.models[name], None, name)
    exact = data.aliases.get(name)
    if exact is not None:  # "Runway" the seed name, before `runway` the createTask form's id
        return Resolved(data.models[exact.target], exact, name)
    wanted = _normalise(name)
    for model_id, spec in data.models.items():
        if model_id.lower() == wanted:
            return Resolved(spec, None, name)
    hit = _alias_index().get(wanted)
    if hit is not None:
        return Resolved(data.models[hit[1].target], hit[1], name)
    raise UnknownModelError(name, near_matches(name))


def near_matches(name: str, limit: int = 4) -> list[str]:
    data = load()
    wanted = _normalise(name)
    ids = {m.lower(): m for m in data.models}
    found = [ids[m] for m in difflib.get_close_matches(wanted, list(ids), n=limit, cutoff=0.55)]
    if len(found) < limit:
        index = _alias_index()
        for key in difflib.get_close_matches(wanted, list(index), n=limit, cutoff=0.6):
            target = index[key][1].target
            if target not in found:
                found.append(target)
    if not found:
        found = [m for m in data.models if wanted and wanted in m.lower()][:limit]
    return found[:limit]


def get(name: str) -> ModelSpec:
    """The model called `name` (id, alias or seed name); raises `UnknownModelError` with near matches."""
    return resolve(name).model


def all_models() -> list[ModelSpec]:
    return list(load().models.values())


def aliases() -> dict[str, Alias]:
    return dict(load().aliases)


def presets() -> dict[str, Preset]:
    return dict(load().presets)


def search(
    *,
    kind: str | None = None,
    capability: str | None = None,
    family: str | None = None,
    status: str | Iterable[str] | None = None,
    text: str | None = None,
) -> list[ModelSpec]:
    """Models matching every given filter, in catalogue order."""
    statuses = {status} if isinstance(status, str) else set(status) if status is not None else None
    found = []
    for spec in load().models.values():
        if kind and spec.media != kind:
            continue
        if capability and capability not in spec.capabilities:
            continue
        if family and spec.family != family:
            continue
        if statuses is not None and spec.status not in statuses:
            continue
        if text and text.lower() not in f"{spec.id} {spec.name} {' '.join(spec.traits.best_for)}".lower():
            continue
        found.append(spec)
    return found


def _spec(model: ModelSpec | str) -> ModelSpec:
    return model if isinstance(model, ModelSpec) else get(model)


def validate(
    model: ModelSpec | str,
    input: Mapping[str, Any],
    *,
    allow_unknown: bool = False,
    allow_local_files: bool = True,
    require: bool = True,
) -> ValidatedInput:
    """Check an input before spending; alias-implied inputs (e.g. a Midjourney speed) are applied."""
    resolved = resolve(model) if isinstance(model, str) else Resolved(model)
    values = dict(resolved.alias.input) if resolved.alias else {}
    values.update(input)
    return _validate(
        resolved.model,
        values,
        allow_unknown=allow_unknown,
        allow_local_files=allow_local_files,
        require=require,
    )


def estimate(
    model: ModelSpec | str,
    input: Mapping[str, Any] | None = None,
    *,
    n: int = 1,
    overrides: Mapping[str, PriceRule] | None = None,
) -> Estimate:
    """Credits for `n` tasks; unknown prices stay unknown. `overrides` defaults to the user's config."""
    spec = _spec(model)
    if overrides is None:
        from kie.config import load_settings

        overrides = load_settings().price_overrides
    return _estimate(spec, input or {}, count=n, override=overrides.get(spec.id))
