"""The catalogue brought up to Kie's September-October 2026 material (issue 14), as users meet it."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from typer.testing import CliRunner

from kie import catalog
from kie.catalog.pricing import price_of
from kie.cli import app
from kie.errors import ValidationError

runner = CliRunner()

NEW_MODELS = [
    "wan/3-0-video",
    "wan/3-0-video-prime",
    "google/gemini-omni-flash-1-1",
    "gpt-image-2-5-flare-text-to-image",
    "gpt-image-2-5-flare-image-to-image",
    "gpt-image-2-5-sunburst-text-to-image",
    "gpt-image-2-5-sunburst-image-to-image",
    "qwen2-1/text-to-image",
    "qwen2-1/image-to-image",
    "seedream/5-flash-text-to-image",
    "seedream/5-flash-image-to-image",
    "seedream/5-flash-layer-decomposition",
    "nano-banana-2-1",
    "grok-imagine-image-2-0/segment-edit",
    "google/gemini-2-5-pro-tts",
    "google/gemini-3-8-flash-tts",
    "google/gemini-3-8-flash-lite-tts",
]
PRODUCT_FORMS = {
    "4o-image-api": "gpt-4o-image",
    "flux1-kontext": "flux-kontext-pro",
    "veo-3-1": "veo3_fast",
    "veo/extend": "veo3/extend",
    "veo/get-1080p-video": "veo3/1080p",
    "veo/get-4k-video": "veo3/4k",
    "runway": "runway/generate",
    "runway/extend-ai-video": "runway/extend",
    "runway/gen4-aleph": "runway/aleph",
}
MUSIC_FORMS = [
    "generate", "extend", "upload-and-cover-audio", "upload-and-extend-audio", "add-vocals",
    "add-instrumental", "mashup", "replace-section", "sounds", "generate-lyrics", "timeStamped-lyrics",
    "boost-music-style", "convert-to-wav-format", "create-music-video", "cover-generate",
    "generate-persona", "generate-midi-from-audio", "separate-vocals", "suno-recovery-audio",
    "check-voice", "create-voice", "validation-phrase", "regenerate-phrase",
]  # fmt: skip


def show(model: str) -> dict[str, Any]:
    result = runner.invoke(app, ["models", "show", model, "--json"])
    assert result.exit_code == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def cost(model_id: str, /, **values: Any) -> float | None:
    args = ["cost", model_id, "--json"]
    for key, value in values.items():
        args += ["-i", f"{key}={value}"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.stderr
    credits: float | None = json.loads(result.stdout)["credits"]
    return credits


@pytest.mark.parametrize("model", NEW_MODELS)
def test_models_show_resolves_each_new_model(model: str) -> None:
    data = show(model)
    assert data["id"] == model and data["status"] == "active" and data["fields"]
    spec = catalog.get(model)
    assert spec.source and any(ch.isdigit() for ch in spec.source)  # where and when the schema was read


@pytest.mark.parametrize("model", [*PRODUCT_FORMS, *(f"ai-music-api/{m}" for m in MUSIC_FORMS)])
def test_models_show_resolves_each_createtask_form(model: str) -> None:
    data = show(model)
    assert data["id"] == model and data["endpoint"]["create"] == "/api/v1/jobs/createTask"
    assert data["endpoint"]["api"] == "market"


def test_there_are_the_23_music_forms_of_the_docs() -> None:
    forms = {m.id for m in catalog.all_models() if m.id.startswith("ai-music-api/")}
    assert len(forms) == 23 == len(MUSIC_FORMS)


@pytest.mark.parametrize(("form", "product"), PRODUCT_FORMS.items())
def test_a_product_form_shares_its_familys_price_and_follow_ups(form: str, product: str) -> None:
    spec, base = catalog.get(form), catalog.get(product)
    assert spec.family == base.family and spec.form_of == product
    if base.price is not None and base.price.by and set(base.price.by) <= set(base.fields):
        assert spec.price is not None and catalog.estimate(spec, {}, overrides={}).credits == (
            catalog.estimate(base, {}, overrides={}).credits
        )


def test_veo_form_prices_by_its_model_field() -> None:
    assert cost("veo-3-1", prompt="x") == 60
    assert cost("veo-3-1", prompt="x", model="veo3", resolution="1080p") == 255
    assert cost("veo-3-1", prompt="x", model="veo3_lite", resolution="4k") == 150


@pytest.mark.parametrize(
    ("model", "values", "credits"),
    [
        ("bytedance/seedance-2-5", {"resolution": "1080p", "duration": 5}, 158 * 5),
        ("minimax-h3/text-to-video", {"resolution": "768P", "duration": 6, "aspect_ratio": "16:9"}, 48),
        ("minimax-h3/image-to-video", {"resolution": "2K", "duration": 4}, 52),
        ("happyhorse/text-to-video", {"resolution": "720p", "duration": 5}, 140),
        ("happyhorse/image-to-video", {"resolution": "1080p", "duration": 3}, 144),
        ("veo3", {"resolution": "1080p"}, 255),
        ("veo3", {"resolution": "4k"}, 380),
        ("veo3_fast", {"resolution": "1080p"}, 65),
        ("veo3_fast", {"resolution": "4k"}, 180),
        ("veo3_lite", {}, 30),
        ("veo3_lite", {"resolution": "1080p"}, 35),
        ("veo3_lite", {"resolution": "4k"}, 150),
        ("veo3/extend", {"model": "lite"}, 30),
        ("happyhorse-1-1/text-to-video", {"resolution": "720p", "duration": 4}, 90),
        ("happyhorse-1-1/image-to-video", {"resolution": "1080p", "duration": 5}, 145),
        ("seedream/5-flash-text-to-image", {"size": "2K"}, 3.24),
        ("qwen2-1/text-to-image", {"resolution": "2K"}, 8),
        ("wan/3-0-video", {"resolution": "720P", "duration": 5}, 80),
        ("nano-banana-2-1", {"resolution": "4K"}, 9),
    ],
)
def test_kie_cost_gives_the_corrected_prices(model: str, values: dict[str, Any], credits: float) -> None:
    assert cost(model, **values) == pytest.approx(credits)


@pytest.mark.parametrize(
    ("model", "values", "rate"),
    [
        ("kling/ai-avatar-standard", [], 8),
        ("kling/ai-avatar-pro", [], 16),
        ("topaz/video-upscale", [], 8),
        ("topaz/video-upscale", ["-i", "upscale_factor=4"], 14),
        ("kling-2.6/motion-control", [], 11),
        ("kling-3.0/motion-control", ["-i", "mode=1080p"], 27),
    ],
)
def test_per_input_second_prices_are_shown_but_stay_unknown(
    model: str, values: list[str], rate: float
) -> None:
    result = runner.invoke(app, ["cost", model, *values, "--json"])
    data = json.loads(result.stdout)
    assert data["known"] is False and data["basis"].startswith(f"{rate} credits")


def test_an_unpublished_price_stays_unknown() -> None:
    for model in ("google/gemini-3-8-flash-tts", "grok-imagine-image-2-0/image-edit", "grok-imagine/extend"):
        assert catalog.get(model).price is None
        assert cost(model) is None


def test_suno_v6_is_current_and_v4_deprecated_with_its_replacement() -> None:
    v6 = show("suno/V6")
    assert v6["id"] == "ai-music-api/generate" and v6["status"] == "active"
    assert catalog.validate("suno/V6", {"prompt": "a song"}).input["model"] == "V6"
    for name in ("suno/V6_MINI", "suno/V6_WILD"):
        assert catalog.validate(name, {"prompt": "a song"}).input["model"] == name.split("/")[1]
    for old in ("V4", "V4_5", "V4_5PLUS", "V4_5ALL", "V5", "V5_5"):
        data = show(f"suno/{old}")
        assert data["status"] == "deprecated" and data["replacement"] == "suno/V6"
    text = runner.invoke(app, ["models", "show", "suno/V4"]).stdout
    assert "Deprecated at Kie; use suno/V6 instead." in text
    listed = json.loads(runner.invoke(app, ["models", "--family", "suno", "--json"]).stdout)
    assert "suno/V4" not in {m["id"] for m in listed} and "ai-music-api/generate" in {m["id"] for m in listed}


def test_deprecated_and_vanished_models_stay_resolvable_with_the_model_to_use() -> None:
    for spec in catalog.search(status="deprecated"):
        assert catalog.get(spec.id) is spec
        if spec.replacement is not None:
            assert catalog.get(spec.replacement).status == "active"
    assert catalog.get("sora-2-text-to-video").replacement == "veo3_fast"


def test_grok_image_edit_split_from_segment_edit() -> None:
    edit, segment = (
        catalog.get("grok-imagine-image-2-0/image-edit"),
        catalog.get("grok-imagine-image-2-0/segment-edit"),
    )
    assert set(segment.fields) == {"prompt", "task_id", "mask_indexs"}
    assert edit.fields["image_urls"].required and edit.fields["aspect_ratio"].required
    assert edit.fields["image_urls"].max_items == 5 and edit.fields["image_urls"].min_items == 1
    with pytest.raises(ValidationError) as caught:
        catalog.validate(edit, {"prompt": "hat", "task_id": "abc"})
    assert "`task_id` is not a field" in str(caught.value) and "`image_urls` is required" in str(caught.value)
    checked = catalog.validate(
        edit, {"prompt": "hat", "image_urls": ["https://x/a.png"], "aspect_ratio": "1:1"}
    )
    assert checked.input["image_urls"] == ["https://x/a.png"]


def test_midjourney_speed_is_optional_and_its_price_unknown_without_it() -> None:
    checked = catalog.validate("midjourney/txt2img", {"prompt": "a fox"})
    assert "speed" not in checked.input
    assert catalog.estimate("midjourney/txt2img", checked.input, overrides={}).credits is None
    assert cost("midjourney/txt2img", prompt="x", speed="turbo") == 16


def test_an_offer_is_used_until_its_end_date_and_never_after() -> None:
    rule = catalog.get("bytedance/seedance-2-5").price
    assert rule is not None and rule.offer is not None and rule.offer.ends == "2026-09-17"
    values = {"resolution": "1080p", "duration": 2}
    during, basis = price_of(rule, values, on=dt.date(2026, 9, 17))
    after, _ = price_of(rule, values, on=dt.date(2026, 9, 18))
    assert during == 228 and "offer until 2026-09-17" in basis
    assert after == 316
    assert price_of(rule, {"resolution": "720p", "duration": 1}, on=dt.date(2026, 9, 1))[0] == 63
    text = runner.invoke(app, ["models", "show", "bytedance/seedance-2-5"]).stdout
    assert "offer ended 2026-09-17" in text and "the regular price is used" in text
