"""Planning a batch: local paths are read against the file's folder, and every pipeline step is priced."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from PIL import Image

from kie.runner.plan import plan_batch

EDIT = "nano-banana-pro"  # `image_input`: a list of images; 18 credits at the default 1K
MODEL = "bytedance/seedream-v4-text-to-image"  # 5 credits
UPSCALE, CUTOUT = "recraft/crisp-upscale", "recraft/remove-background"  # 0.5 and 1 credit


def write(path: Path, *rows: dict[str, object]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run from a folder that is not the batch file's, as a resume from another shell would."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


def test_relative_paths_are_read_against_the_batch_folder_and_kept_absolute(
    tmp_path: Path, elsewhere: Path
) -> None:
    folder = tmp_path / "shoot"
    folder.mkdir()
    Image.new("RGB", (8, 8)).save(folder / "ref.png")
    batch = write(
        folder / "b.jsonl",
        {"id": "a", "model": EDIT, "prompt": "edit", "image_input": ["ref.png", "https://example.com/x.png"]},
        {"id": "b", "model": EDIT, "prompt": "edit", "image_input": "./ref.png"},
    )
    plan = plan_batch(batch)
    assert plan.errors == []
    first, second = (job.input["image_input"] for job in plan.jobs)
    assert first == [str(folder / "ref.png"), "https://example.com/x.png"]
    assert second == [str(folder / "ref.png")] and os.path.isabs(second[0])
    assert not (elsewhere / "ref.png").exists()


def test_a_relative_path_missing_from_the_batch_folder_is_a_row_error(
    tmp_path: Path, elsewhere: Path
) -> None:
    Image.new("RGB", (8, 8)).save(elsewhere / "ref.png")  # present where we run, not beside the file
    batch = write(
        tmp_path / "shoot" / "b.jsonl", {"model": EDIT, "prompt": "edit", "image_input": ["ref.png"]}
    )
    (error,) = plan_batch(batch).errors
    assert error.line == 1 and str(tmp_path / "shoot" / "ref.png") in error.message


def test_the_resume_key_does_not_depend_on_the_folder(tmp_path: Path) -> None:
    row = {"model": EDIT, "prompt": "edit", "image_input": ["ref.png"]}
    keys = []
    for name in ("one", "two"):
        Image.new("RGB", (8, 8)).save(write(tmp_path / name / "b.jsonl", row).parent / "ref.png")
        keys.append(plan_batch(tmp_path / name / "b.jsonl").jobs[0].row_key)
    assert keys[0] == keys[1]


def test_pipeline_steps_are_priced_per_model(tmp_path: Path) -> None:
    batch = write(
        tmp_path / "b.jsonl",
        {"model": MODEL, "prompt": "a cat", "then": [{"model": UPSCALE}, {"model": CUTOUT}]},
        {"model": MODEL, "prompt": "a dog", "then": {"model": UPSCALE}},
    )
    plan = plan_batch(batch)
    assert plan.errors == [] and len(plan.jobs) == 5
    assert plan.rows_by_model == {MODEL: 2, UPSCALE: 2, CUTOUT: 1}
    assert plan.credits_by_model == {MODEL: 10, UPSCALE: 1, CUTOUT: 1}
    assert plan.known_credits == 12
    assert [(j.step, j.pending_input) for j in plan.jobs[:3]] == [
        (0, None),
        (1, {"_from": "image"}),
        (2, {"_from": "image"}),
    ]


def test_step_problems_are_row_errors_found_before_the_run(tmp_path: Path) -> None:
    batch = write(
        tmp_path / "b.jsonl",
        {"model": MODEL, "prompt": "ok"},
        {"model": MODEL, "prompt": "x", "then": [{"model": "recraft/crisp-upscal"}]},
        {"model": MODEL, "prompt": "x", "then": [{"model": UPSCALE, "scale": 4}]},
        {"model": MODEL, "prompt": "x", "then": 5},
        {"model": MODEL, "prompt": "x", "output": "../up"},
    )
    plan = plan_batch(batch)
    errors = {e.line: e.message for e in plan.errors}
    assert sorted(errors) == [2, 3, 4, 5] and len(plan.jobs) == 1
    assert "Unknown model 'recraft/crisp-upscal'" in errors[2]
    assert "`scale` is not a field of recraft/crisp-upscale" in errors[3]
    assert "`then` must be a step or a list of steps" in errors[4]
    assert "`output` must be a plain file name" in errors[5]


def test_unknown_prices_are_counted_per_model_when_allowed(tmp_path: Path) -> None:
    unpriced = "kling-3.0-omni/text-to-video"
    batch = write(tmp_path / "b.jsonl", {"model": unpriced, "prompt": "x"}, {"model": MODEL, "prompt": "y"})
    refused = plan_batch(batch)
    assert [e.line for e in refused.errors] == [1] and "no known price" in refused.errors[0].message
    allowed = plan_batch(batch, allow_unknown_price=True)
    assert allowed.errors == [] and allowed.unknown_price_rows == [1]
    assert allowed.unknown_by_model == {unpriced: 1} and allowed.known_credits == 5
