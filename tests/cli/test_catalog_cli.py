"""`kie models`, `kie models show`, `kie cost`, `kie recommend` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from kie import catalog
from kie.cli import app

runner = CliRunner()


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_models_table_and_json_filters() -> None:
    code, out, _ = run("models", "--kind", "video", "--json")
    rows = json.loads(out)
    assert code == 0 and rows and all(r["kind"] == "video" for r in rows)
    code, out, _ = run("models", "--capability", "upscale", "--json")
    assert code == 0 and "recraft/crisp-upscale" in {r["id"] for r in json.loads(out)}
    code, out, _ = run("models", "--family", "kling")
    assert code == 0 and "kling-3.0/video\t" in out and "Traceback" not in out
    code, _, err = run("models", "--kind", "hologram")
    assert code == 2 and "--kind must be one of" in err


def test_models_show_every_field() -> None:
    code, out, _ = run("models", "show", "nano-banana-pro", "--json")
    data = json.loads(out)
    assert (
        code == 0 and data["id"] == "nano-banana-pro" and data["docs_url"].startswith("https://docs.kie.ai")
    )
    fields = {f["field"]: f for f in data["fields"]}
    assert fields["resolution"]["default"] == "1K" and "4K" in fields["resolution"]["allowed"]
    assert "google/pro-image-to-image" in data["aliases"] and data["price_rule"]["table"]["4K"] == 24
    code, out, _ = run("models", "show", "Seedream V4")
    assert code == 0 and "alias of bytedance/seedream-v4-text-to-image" in out


def test_models_show_unknown_suggests() -> None:
    code, _, err = run("models", "show", "kling-3.0/vidoe")
    assert code == 2 and "Unknown model" in err and "kling-3.0/video" in err and "Traceback" not in err


def test_cost_single_and_count() -> None:
    code, out, _ = run("cost", "nano-banana-pro", "-i", "resolution=4K", "-n", "10", "--json")
    data = json.loads(out)
    assert code == 0 and data["credits"] == 240 and data["usd"] == 1.2 and data["count"] == 10


def test_cost_bad_enum_is_one_sentence() -> None:
    code, _, err = run("cost", "nano-banana-pro", "-i", "resolution=5K")
    assert code == 2 and "`resolution` must be one of 1K, 2K, 4K" in err and "Traceback" not in err


def test_cost_of_a_100_row_mixed_batch(tmp_path: Path) -> None:
    unpriced = catalog.get("kling-3.0-omni/text-to-video")
    assert unpriced.price is None
    rows = []
    for n in range(100):
        if n % 4 == 0:
            rows.append({"id": f"r{n}", "model": "nano-banana-pro", "prompt": f"p{n}", "resolution": "4K"})
        elif n % 4 == 1:
            rows.append({"id": f"r{n}", "model": "Seedream V4", "prompt": f"p{n}"})
        elif n % 4 == 2:
            rows.append({"id": f"r{n}", "model": "z-image", "prompt": f"p{n}", "aspect_ratio": "1:1"})
        else:
            rows.append({"id": f"r{n}", "model": unpriced.id, "prompt": f"p{n}"})
    path = tmp_path / "batch.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    code, out, _ = run("cost", "--file", str(path), "--json")
    data = json.loads(out)
    assert code == 0, data["invalid_rows"]
    by_model = {m["model"]: m for m in data["models"]}
    assert by_model["nano-banana-pro"]["rows"] == 25 and by_model["nano-banana-pro"]["credits"] == 600
    assert by_model[unpriced.id]["credits"] is None and data["unknown_rows"] == 25
    code, out, _ = run("cost", "--file", str(path))
    assert code == 0 and "unknown" in out and "total" in out


def test_cost_file_reports_bad_rows_with_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(
        '{"model": "nano-banana-pro", "prompt": "ok"}\n{not json}\n'
        '{"model": "nano-banana-pro", "resolution": "9K", "prompt": "x"}\n'
    )
    code, _, err = run("cost", "--file", str(path))
    assert code == 2 and "line 2" in err and "line 3" in err and "resolution" in err


def test_recommend_ranked_with_reasons_and_ladder() -> None:
    code, out, _ = run("recommend", "--use-case", "budget", "--kind", "image", "--json")
    data = json.loads(out)
    assert code == 0 and data["ranked"] and all(r["reason"] for r in data["ranked"])
    assert data["escalation"]
    code, _, err = run("recommend", "--use-case", "cheapest")
    assert code == 2 and "budget" in err
