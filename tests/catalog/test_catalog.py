"""The catalogue: every model loads, real requests validate, mistakes are explained, prices are honest."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from kie import catalog
from kie.catalog.loader import load
from kie.catalog.pricing import estimate
from kie.catalog.spec import ModelSpec, PriceRule
from kie.errors import UnknownModelError, ValidationError

HERE = Path(__file__).parent
APPENDIX_C = json.loads((HERE / "appendix_c.json").read_text())["requests"]
SEED_NAMES = json.loads((HERE / "seed_names.json").read_text())

# The 135 Market ids of kie-api.md Appendix A (Aug-2026 docs crawl), by family prefix counts.
APPENDIX_A_COUNT = 135
LEGACY_APIS = {"gpt4o-image", "flux-kontext", "midjourney", "veo", "runway", "aleph", "luma", "suno"}


def test_every_appendix_a_model_and_the_legacy_families_load() -> None:
    models = load().models
    market = [m for m in models.values() if m.endpoint.api == "market" and m.status != "deprecated"]
    assert len(market) >= APPENDIX_A_COUNT
    assert {m.endpoint.api for m in models.values()} >= LEGACY_APIS
    for required in (
        "sora-2-text-to-video",
        "elevenlabs/sound-effect-v2",
        "ideogram/v3-reframe",
        "kling/v1-avatar-standard",
        "veo3_fast",
        "midjourney/txt2img",
        "suno/V5",
        "luma/modify",
    ):
        assert required in models


def test_deprecated_models_are_marked() -> None:
    for model_id in ("sora-2-text-to-video", "elevenlabs/speech-to-text", "ideogram/v3-reframe"):
        assert catalog.get(model_id).status == "deprecated"


@pytest.mark.parametrize("row", APPENDIX_C, ids=[r["model"] for r in APPENDIX_C])
def test_every_real_accepted_request_validates(row: dict) -> None:
    body = row["body"]
    checked = catalog.validate(body["model"], body["input"], allow_local_files=False)
    assert checked.model.id == row["model"]
    for key in body["input"]:
        assert key in checked.input  # nothing a real request carried is dropped


@pytest.mark.parametrize("entry", SEED_NAMES, ids=[e["name"] for e in SEED_NAMES])
def test_every_seed_name_resolves(entry: dict) -> None:
    assert catalog.get(entry["name"]).id == entry["expect"]


def test_seed_aliases_explain_missing_endpoints() -> None:
    resolved = catalog.resolve("/api/v1/seedream/generate")
    assert resolved.model.id == "bytedance/seedream-v4-text-to-image"
    assert resolved.alias is not None and "not exist" in (resolved.alias.note or "")
    assert catalog.get("https://api.kie.ai/api/v1/recraft/upscale").id == "recraft/crisp-upscale"
    assert catalog.get("google/pro-image-to-image").id == "nano-banana-pro"
    assert catalog.get("/api/v1/google/imagen-4-fast").id == "google/imagen4-fast"
    assert catalog.get("Seedream V4").id == "bytedance/seedream-v4-text-to-image"


def test_ghibli_is_a_preset_not_a_model() -> None:
    presets = catalog.presets()
    assert "ghibli" in presets and "{prompt}" in presets["ghibli"].template
    assert "ghibli" not in load().models


# -- validation: one test per kind of mistake ----------------------------------------------------
def issue_fields(exc: ValidationError) -> list[str]:
    return [i.field for i in exc.issues]


def test_unknown_field_is_rejected_with_did_you_mean() -> None:
    with pytest.raises(ValidationError) as caught:
        catalog.validate("nano-banana-pro", {"prompt": "x", "aspect_raito": "16:9"})
    (issue,) = caught.value.issues
    assert issue.field == "aspect_raito" and issue.suggestion == "aspect_ratio"
    assert "aspect_ratio" in str(caught.value)


def test_unknown_field_can_be_passed_through_explicitly() -> None:
    checked = catalog.validate("nano-banana-pro", {"prompt": "x", "new_flag": True}, allow_unknown=True)
    assert checked.input["new_flag"] is True and checked.passthrough == ("new_flag",)


def test_enum_typo_suggests_the_right_value() -> None:
    with pytest.raises(ValidationError) as caught:
        catalog.validate("nano-banana-pro", {"prompt": "x", "aspect_ratio": "16-9"})
    (issue,) = caught.value.issues
    assert issue.suggestion == "16:9" and "must be one of" in issue.problem and "21:9" in issue.problem


def test_missing_required_field() -> None:
    with pytest.raises(ValidationError) as caught:
        catalog.validate("kling-2.6/text-to-video", {"prompt": "x"})
    assert "sound" in issue_fields(caught.value) or "is required" in str(caught.value)


def test_out_of_range_number_names_the_range() -> None:
    with pytest.raises(ValidationError, match=r"`cfg_scale` must be at most 1 \(allowed 0 to 1\), got 7.5"):
        catalog.validate("kling/v2-1-master-text-to-video", {"prompt": "eagle", "cfg_scale": 7.5})


def test_wrong_type_and_too_long_and_too_many() -> None:
    spec = catalog.get("nano-banana-pro")
    limit = spec.fields["prompt"].max_length
    assert limit is not None
    with pytest.raises(ValidationError) as caught:
        catalog.validate(
            spec,
            {"prompt": "x" * (limit + 1), "image_input": ["https://a/b.png"] * 50, "resolution": {"bad": 1}},
        )
    fields = issue_fields(caught.value)
    assert {"prompt", "image_input", "resolution"} <= set(fields)
    assert "Fix the fields and try again" in str(caught.value)


def test_every_mistake_is_reported_at_once_in_one_sentence() -> None:
    with pytest.raises(ValidationError) as caught:
        catalog.validate("nano-banana-pro", {"aspect_ratio": "16-9", "colour": "red"})
    assert len(caught.value.issues) == 3  # enum, unknown field, missing prompt
    assert str(caught.value).count("\n") == 0


def test_string_enums_accept_numbers_and_number_fields_accept_numeric_strings() -> None:
    kling = catalog.validate(
        "kling-2.6/text-to-video", {"prompt": "x", "duration": 10, "sound": "false", "aspect_ratio": "16:9"}
    )
    assert kling.input["duration"] == "10" and kling.input["sound"] is False


def test_defaults_are_filled_and_reported() -> None:
    checked = catalog.validate("nano-banana-pro", {"prompt": "x"})
    assert checked.input["resolution"] == "1K" and "resolution" in checked.defaulted


def test_unknown_model_suggests_near_matches() -> None:
    with pytest.raises(UnknownModelError) as caught:
        catalog.get("nano-banan-pro")
    assert "nano-banana-pro" in caught.value.suggestions


# -- prices -----------------------------------------------------------------------------------------
def test_table_price_by_option() -> None:
    spec = catalog.get("nano-banana-pro")
    assert estimate(spec, {"resolution": "4K"}).credits == 24
    assert estimate(spec, {}).credits == 18  # the default resolution prices it


def test_price_times_count_and_usd() -> None:
    est = estimate(catalog.get("nano-banana-pro"), {}, count=100)
    assert est.credits == 1800 and est.usd() == pytest.approx(9.0) and est.usd(0.01) == pytest.approx(18.0)


def test_per_second_price_uses_duration() -> None:
    spec = catalog.get("kling-3.0/video")
    assert spec.price is not None and spec.price.per == "second"
    five = estimate(spec, {"mode": "std", "sound": False, "duration": "5"}).credits
    ten = estimate(spec, {"mode": "std", "sound": False, "duration": "10"}).credits
    assert five is not None and ten == 2 * five


def test_unknown_price_is_unknown_never_zero() -> None:
    unpriced = [m for m in catalog.all_models() if m.price is None]
    assert unpriced, "some models have no published price"
    est = estimate(unpriced[0], {})
    assert est.credits is None and est.usd() is None and not est.known and "no published price" in est.basis


def test_missing_table_key_is_unknown() -> None:
    rule = PriceRule(by=("resolution",), table={"1K": 5}, source="t")
    spec = ModelSpec.model_validate(
        {**catalog.get("nano-banana-pro").model_dump(), "price": rule.model_dump()}
    )
    assert estimate(spec, {"resolution": "2K"}).credits is None


def test_price_override_wins() -> None:
    rule = PriceRule(credits=3, source="mine")
    assert catalog.estimate("nano-banana-pro", {}, overrides={"nano-banana-pro": rule}).credits == 3


def test_every_price_rule_names_its_source_and_real_fields() -> None:
    for spec in catalog.all_models():
        if spec.price is not None:
            assert spec.price.source.strip()


# -- recommendations ----------------------------------------------------------------------------------
@pytest.mark.parametrize("use_case", ["budget", "speed", "quality", "artistic", "text", "chinese", "utility"])
def test_each_use_case_recommends(use_case: str) -> None:
    ranked = catalog.recommend(use_case, kind="image" if use_case != "utility" else None)
    assert ranked and all(r.reason for r in ranked)
    assert all(r.model.status == "active" for r in ranked)


def test_budget_ranks_cheap_first_and_quality_ranks_good_first() -> None:
    budget = catalog.recommend("budget", kind="image", capability="text-to-image", limit=5)
    quality = catalog.recommend("quality", kind="image", capability="text-to-image", limit=5)
    cheap = [r.estimate.credits_each for r in budget]
    assert all(c is not None for c in cheap) and min(cheap) <= 6  # type: ignore[type-var]
    assert min(r.model.traits.quality for r in quality) >= 4


def test_max_credits_filters_and_chinese_requires_zh() -> None:
    for rec in catalog.recommend("budget", kind="image", max_credits=5):
        assert rec.estimate.credits_each is not None and rec.estimate.credits_each <= 5
    for rec in catalog.recommend("chinese", kind="image"):
        assert "zh" in rec.model.traits.languages


def test_escalation_ladder_goes_from_cheap_to_premium() -> None:
    ladder = catalog.escalation("image")
    assert len(ladder) >= 3
    prices = [e.credits_each for _, e in ladder if e.credits_each is not None]
    assert prices[0] <= prices[-1]


def test_adding_a_model_is_adding_data(tmp_path: Path) -> None:
    entry = {
        "id": "acme/new-model",
        "name": "Acme",
        "family": "acme",
        "media": "image",
        "capabilities": ["text-to-image"],
        "fields": {"prompt": {"type": "string", "required": True}},
        "price": {"credits": 2, "source": "test"},
    }
    spec = ModelSpec.model_validate(entry)
    assert catalog.validate(spec, {"prompt": "hi"}).input == {"prompt": "hi"}
    assert estimate(spec, {}).credits == 2


def test_model_ids_are_unique_and_well_formed() -> None:
    ids = [m.id for m in catalog.all_models()]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[A-Za-z0-9._/-]+", i) for i in ids)
