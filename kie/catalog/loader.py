"""Reads the catalogue's JSON files into `ModelSpec` objects, once, and checks their cross-references.

Data errors are programming errors in this package, so they raise `CatalogDataError` with the file
and model named, at import time, rather than surfacing later as a wrong validation or a wrong price.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from pydantic import ValidationError as PydanticValidationError

from kie.catalog.spec import Alias, FollowUp, ModelSpec, Preset, UseCase


class CatalogDataError(RuntimeError):
    """A catalogue data file is malformed or refers to something that does not exist."""


@dataclass(frozen=True)
class CatalogData:
    models: dict[str, ModelSpec]
    aliases: dict[str, Alias]
    presets: dict[str, Preset]
    use_cases: dict[str, UseCase]
    escalation: dict[str, tuple[str, ...]] = field(default_factory=dict)
    followups: dict[str, dict[str, FollowUp]] = field(default_factory=dict)


def _read_json(name: str) -> Any:
    path = resources.files("kie.catalog").joinpath("data").joinpath(name)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise CatalogDataError(f"catalogue file {name} is not valid JSON: {exc}") from exc


def _load_models() -> dict[str, ModelSpec]:
    models: dict[str, ModelSpec] = {}
    folder = resources.files("kie.catalog").joinpath("data").joinpath("models")
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if not entry.name.endswith(".json"):
            continue
        raw = _read_json(f"models/{entry.name}")
        if not isinstance(raw, list):
            raise CatalogDataError(f"models/{entry.name} must hold a JSON list of models")
        for item in raw:
            try:
                spec = ModelSpec.model_validate(item)
            except PydanticValidationError as exc:
                ident = item.get("id", "?") if isinstance(item, dict) else "?"
                raise CatalogDataError(f"models/{entry.name}: model {ident!r} is invalid:\n{exc}") from exc
            if spec.id in models:
                raise CatalogDataError(f"models/{entry.name}: model {spec.id!r} is defined twice")
            models[spec.id] = spec
    return models


def _check_refs(data: CatalogData) -> None:
    known = data.models.keys()
    for model_id, spec in data.models.items():
        for what, target in (("replacement", spec.replacement), ("form_of", spec.form_of)):
            if target is not None and target not in known and target not in data.aliases:
                raise CatalogDataError(f"model {model_id!r}: {what} names unknown model {target!r}")
    for name, alias in data.aliases.items():
        if alias.target not in known:
            raise CatalogDataError(f"aliases.json: {name!r} points to unknown model {alias.target!r}")
    for name, preset in data.presets.items():
        for target in preset.models:
            if target not in known:
                raise CatalogDataError(f"presets.json: {name!r} names unknown model {target!r}")
    for op, by_family in data.followups.items():
        for family, rule in by_family.items():
            if rule.model not in known:
                raise CatalogDataError(f"followups.json: {op}/{family} names unknown model {rule.model!r}")
    for kind, ladder in data.escalation.items():
        for target in ladder:
            if target not in known:
                raise CatalogDataError(f"usecases.json: escalation[{kind!r}] names unknown model {target!r}")


@cache
def load() -> CatalogData:
    usecases_raw = _read_json("usecases.json")
    try:
        data = CatalogData(
            models=_load_models(),
            aliases={k: Alias.model_validate(v) for k, v in _read_json("aliases.json").items()},
            presets={k: Preset.model_validate(v) for k, v in _read_json("presets.json").items()},
            use_cases={k: UseCase.model_validate(v) for k, v in usecases_raw["use_cases"].items()},
            escalation={k: tuple(v) for k, v in usecases_raw.get("escalation", {}).items()},
            followups={
                op: {family: FollowUp.model_validate(rule) for family, rule in by_family.items()}
                for op, by_family in _read_json("followups.json").items()
                if not op.startswith("_")
            },
        )
    except PydanticValidationError as exc:
        raise CatalogDataError(f"catalogue data is invalid:\n{exc}") from exc
    _check_refs(data)
    return data
