"""Defaults on the wire: the body carries what the user set and what the price depends on, nothing else.

Kie echoes back exactly the keys it was sent and applies its own defaults to the rest, so a documented
default copied into every body would silently override Kie's own when the two drift apart.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from kie import catalog
from kie.catalog.validate import price_fields
from kie.cli import app
from kie.client import Kie
from kie.protocol.families import family_for
from kie.protocol.families.market import MarketFamily, wire_input
from kie.sandbox.server import SandboxServer

RECORDED = json.loads((Path(__file__).parents[1] / "catalog" / "appendix_c.json").read_text())["requests"]


def sent_body(model: str, values: dict[str, Any]) -> dict[str, Any]:
    spec = catalog.get(model)
    checked = catalog.validate(spec, values, allow_local_files=False)
    request = family_for(spec).create_request(spec, checked.input, None)
    assert request.json is not None
    body: dict[str, Any] = request.json
    return body


def same_value(recorded: Any, sent: Any) -> bool:
    """Equal, or the numeric string Kie itself stores as the number (Appendix C: "6" came back as 6)."""
    if recorded == sent:
        return True
    if isinstance(recorded, str) and isinstance(sent, (int, float)) and not isinstance(sent, bool):
        try:
            return float(recorded) == float(sent)
        except ValueError:
            return False
    return False


@pytest.mark.parametrize("recorded", RECORDED, ids=[r["model"] for r in RECORDED])
def test_each_recorded_real_body_is_sent_as_recorded(recorded: dict[str, Any]) -> None:
    body = sent_body(recorded["model"], recorded["body"]["input"])
    assert body["model"] == recorded["body"]["model"] and set(body) == {"model", "input"}
    real, ours = recorded["body"]["input"], body["input"]
    extra = set(ours) - set(real)
    assert set(real) <= set(ours), f"kie dropped {set(real) - set(ours)}"
    assert extra <= price_fields(catalog.get(recorded["model"])), f"unasked-for fields {extra}"
    for key, value in real.items():
        assert same_value(value, ours[key]), (key, value, ours[key])


def test_the_replay_adds_only_price_fields_and_does_add_them() -> None:
    added = {
        r["model"]: set(sent_body(r["model"], r["body"]["input"])["input"]) - set(r["body"]["input"])
        for r in RECORDED
    }
    assert added["nano-banana-pro"] == {"resolution"}  # 18 or 24 credits: the charge must match
    assert added["grok-imagine/upscale"] == {"resolution"}
    assert added["wan/2-7-image"] == set() and added["happyhorse/video-edit"] == set()


def test_documented_defaults_that_do_not_change_the_price_stay_off_the_wire() -> None:
    spec = catalog.get("wan/2-7-image-to-video")
    checked = catalog.validate(spec, {"prompt": "a cat", "first_frame_url": "https://x/a.png"})
    body = sent_body(spec.id, {"prompt": "a cat", "first_frame_url": "https://x/a.png"})["input"]
    assert "prompt_extend" in checked.checked and "prompt_extend" not in body  # checked, not sent
    assert "watermark" not in body
    assert {"resolution", "duration"} <= set(body)  # the price depends on both
    estimate = catalog.estimate(spec, checked.input, overrides={})
    assert estimate.credits == catalog.estimate(spec, checked.checked, overrides={}).credits


def test_a_field_kie_requires_keeps_its_default_on_the_wire() -> None:
    body = sent_body("seedream/5-lite-text-to-image", {"prompt": "a lighthouse"})["input"]
    assert body == {"prompt": "a lighthouse", "aspect_ratio": "1:1", "quality": "basic"}


def test_what_the_user_sets_is_sent_even_when_it_equals_the_default() -> None:
    body = sent_body("wan/2-7-image-to-video", {"prompt": "a", "first_frame_url": "u", "watermark": False})
    assert body["input"]["watermark"] is False


def test_the_encoder_restores_missing_price_fields_of_a_hand_built_input() -> None:
    spec = catalog.get("nano-banana-pro")
    assert wire_input(spec, {"prompt": "x", "output_format": None}) == {"prompt": "x", "resolution": "1K"}
    request = MarketFamily().create_request(spec, {"prompt": "x"}, "https://cb.example/x")
    assert request.json == {
        "model": "nano-banana-pro",
        "input": {"prompt": "x", "resolution": "1K"},
        "callBackUrl": "https://cb.example/x",
    }


def test_the_sandbox_receives_exactly_the_wire_body(
    client: Kie, sandbox: SandboxServer, tmp_path: Path
) -> None:
    gen = client.generate("nano-banana-pro", prompt="a red fox", output_dir=tmp_path)
    # output_format and aspect_ratio have documented defaults too, but they do not change the price.
    assert sandbox.state.tasks[gen.task_id].input == {"prompt": "a red fox", "resolution": "1K"}
    assert gen.estimate.credits == 18 == sandbox.state.tasks[gen.task_id].credits_consumed
    plain = client.generate("wan/2-7-image", prompt="a red fox", output_dir=tmp_path)
    assert sandbox.state.tasks[plain.task_id].input == {"prompt": "a red fox"}


def test_midjourney_generates_on_the_sandbox_without_speed(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["generate", "midjourney/txt2img", "--prompt", "x", "--sandbox", "-o", str(tmp_path), "--json"],
    )
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["state"] == "succeeded" and data["sandbox"] is True and len(data["files"]) == 4
