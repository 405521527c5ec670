"""`kie cost --file` quotes exactly what `kie batch run --dry-run` plans, pipeline steps included."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.cli.test_commands_e2e import KIE, env

MODEL = "bytedance/seedream-v4-text-to-image"  # 5 credits
UPSCALE, CUTOUT = "recraft/crisp-upscale", "recraft/remove-background"  # 0.5 and 1 credit


def kie(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([KIE, *args], capture_output=True, text=True, env=env(tmp_path), timeout=120)


def write(path: Path, *rows: dict[str, Any]) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_cost_file_equals_the_dry_run_with_pipeline_steps(tmp_path: Path) -> None:
    batch = write(
        tmp_path / "b.jsonl",
        {"id": "cat", "model": MODEL, "prompt": "a cat", "then": [{"model": UPSCALE}, {"model": CUTOUT}]},
        {"id": "dog", "model": MODEL, "prompt": "a dog", "then": {"model": UPSCALE}},
        {"id": "owl", "model": "z-image", "prompt": "an owl", "aspect_ratio": "1:1"},
    )
    cost = kie(tmp_path, "cost", "--file", str(batch), "--json")
    dry = kie(tmp_path, "batch", "run", str(batch), "--dry-run", "--json")
    assert cost.returncode == 0, cost.stderr
    assert dry.returncode == 0, dry.stderr
    quoted, planned = json.loads(cost.stdout), json.loads(dry.stdout)
    assert quoted["total_credits_known"] == planned["credits"]
    assert planned["credits"] == pytest.approx(5 + 0.5 + 1 + 5 + 0.5 + 0.8)
    assert quoted["jobs"] == planned["jobs"] == 6
    assert {m["model"]: m["credits"] for m in quoted["models"]} == planned["by_model"]
    assert {m["model"]: m["rows"] for m in quoted["models"]} == {
        MODEL: 2,
        UPSCALE: 2,
        CUTOUT: 1,
        "z-image": 1,
    }


def test_cost_file_reports_unknown_prices_and_exits_2_on_invalid_rows(tmp_path: Path) -> None:
    unpriced = "kling-3.0-omni/text-to-video"
    batch = write(
        tmp_path / "b.jsonl",
        {"model": unpriced, "prompt": "x"},
        {"model": MODEL, "prompt": "y", "then": 5},
        {"model": MODEL, "prompt": "z", "output": "a/b"},
    )
    proc = kie(tmp_path, "cost", "--file", str(batch), "--json")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    data = json.loads(proc.stdout)
    assert data["unknown_rows"] == 1 and data["models"][0]["credits"] is None
    assert [row["line"] for row in data["invalid_rows"]] == [2, 3]
    assert "`then` must be a step or a list of steps" in data["invalid_rows"][0]["error"]


def test_an_empty_batch_file_is_exit_2_for_cost_and_dry_run(tmp_path: Path) -> None:
    batch = tmp_path / "empty.jsonl"
    batch.write_text("# nothing yet\n")
    for args in (("cost", "--file", str(batch)), ("batch", "run", str(batch), "--dry-run")):
        proc = kie(tmp_path, *args)
        assert proc.returncode == 2, args
        assert "has no rows; add one JSON object per line." in proc.stderr and "Traceback" not in proc.stderr
