"""The catalogue's prose is read by users, so it must not carry the maintainers' provenance tags.

Where a fact came from (a seed document, a recorded request, a section of the research notes) lives in
the `source`/`sources` fields, which are shown only on request; the text users see keeps the fact alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from kie import catalog
from kie.catalog import ModelSpec

# Tags that mean something only to the people who built the catalogue.
PROVENANCE = re.compile(
    r"S-[A-Z]{3}"
    r"|\[(?:REAL|DOCS|CODE|NOTES)\]"
    r"|Appendix [A-Z]"
    r"|§"
    r"|kie-api\.md"
    r"|\bseeds?\s+\d"
    r"|\bseeds?'|\bseed's\b"
    r"|\bSeeds?\b"
    r"|\bthe (?:\w+ )?seeds\b"
    r"|\(seeds?\)"
)
# `seed` is also a real input field (a random seed): lowercase mentions are fine on models that have one.
ANY_SEED = re.compile(r"\bseeds?\b", re.IGNORECASE)


def _has_seed_field(spec: ModelSpec) -> bool:
    return "seed" in spec.fields or "seeds" in spec.fields


def _table_inputs(spec: ModelSpec) -> Iterator[dict[str, str]]:
    """One input per priced table row, so every basis wording the table can produce is checked."""
    rule = spec.price
    if rule is None or rule.table is None:
        return
    for key in rule.table:
        yield dict(zip(rule.by, key.split("|"), strict=False))


def _user_texts() -> Iterator[tuple[str, str, bool]]:
    """(where, text, may mention the seed field) for every catalogue string a user can be shown."""
    data = catalog.load()
    for name, alias in data.aliases.items():
        if alias.note:
            yield f"alias {name!r} note", alias.note, False
    for name, preset in data.presets.items():
        yield f"preset {name!r} name", preset.name, False
        yield f"preset {name!r} description", preset.description, False
    for name, case in data.use_cases.items():
        yield f"use case {name!r} description", case.description, False
        yield f"use case {name!r} reason", case.reason, False
        for rec in catalog.recommend(name, overrides={}):
            yield f"recommendation {rec.model.id} for {name!r}", rec.reason, False
    for spec in data.models.values():
        seedy = _has_seed_field(spec)
        for index, note in enumerate(spec.notes):
            yield f"{spec.id} note {index}", note, seedy
        for field_name, field in spec.fields.items():
            if field.note:
                yield f"{spec.id}.{field_name} note", field.note, seedy
            if field.description:
                yield f"{spec.id}.{field_name} description", field.description, seedy
        if spec.price is None:
            continue
        if spec.price.note:
            yield f"{spec.id} price note", spec.price.note, seedy
        for values in [{}, *_table_inputs(spec)]:
            basis = catalog.estimate(spec, values, overrides={}).basis
            yield f"{spec.id} price basis for {values}", basis, False


def _offends(text: str, may_mention_seed_field: bool) -> bool:
    if PROVENANCE.search(text):
        return True
    return not may_mention_seed_field and ANY_SEED.search(text) is not None


@pytest.mark.parametrize(
    "text",
    [
        "Seedream in the seeds means Seedream V4.",
        "In the image seeds, GPT-4o means the 4o Image API.",
        "the seeds' /api/v1/qwen/generate endpoint does not exist",
        "(The seed's short form of /api/v1/qwen/generate.)",
        "Seed 000's name for google/pro-image-to-image",
        "Seeds 001/003 pick Midjourney",
        "Typically 20-60 s per task (seeds).",
        "fields from S-HAR model-schemas.ts",
        "accepted in a real request [REAL]",
        "costTime 48 s (Appendix C)",
        "kie-api.md §9.2 gives 12 credits",
    ],
)
def test_the_pattern_catches_provenance(text: str) -> None:
    assert _offends(text, may_mention_seed_field=True)


@pytest.mark.parametrize(
    "text",
    [
        "Random seed; the same seed gives similar results.",
        "seed defaults to 1 in the docs, so repeated calls give the same result unless seed is set.",
        "The seed field is a string here (an integer on imagen4-fast).",
        "Seedream means Seedream V4 (the cheap, fast bilingual model).",
    ],
)
def test_the_pattern_allows_the_seed_input_field(text: str) -> None:
    assert not _offends(text, may_mention_seed_field=True)


def test_seed_is_only_allowed_on_models_with_a_seed_field() -> None:
    assert _offends("seed defaults to 0", may_mention_seed_field=False)


def test_no_user_facing_catalogue_text_carries_provenance() -> None:
    texts = list(_user_texts())
    assert len(texts) > 1000  # every kind of text above was actually visited
    offenders = [f"{where}: {text}" for where, text, seedy in texts if _offends(text, seedy)]
    assert offenders == []


def test_provenance_is_kept_for_maintainers() -> None:
    models = catalog.all_models()
    assert any("Appendix C" in source for spec in models for source in spec.sources)
    assert any(field.source for spec in models for field in spec.fields.values())
    assert catalog.aliases()["Seedream V4"].source
    assert catalog.presets()["ghibli"].source
    assert all(case.source for case in catalog.load().use_cases.values())
