"""The `kie` executable as a new user meets it: real processes, real sandbox, files on disk."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from PIL import Image

from kie.sandbox.server import SandboxServer
from kie.store import Ledger

KIE = shutil.which("kie") or str(Path(sys.executable).parent / "kie")


def env(tmp_path: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KIE_")}
    clean.update({"KIE_CONFIG": str(tmp_path / "none.toml"), "KIE_HOME": str(tmp_path / "home")})
    return clean


def test_main_job_on_the_sandbox_saves_an_image_without_a_key(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            KIE,
            "generate",
            "nano-banana-pro",
            "--sandbox",
            "--prompt",
            "a lighthouse at dawn",
            "-i",
            "aspect_ratio=16:9",
            "-o",
            str(out),
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env(tmp_path),
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["sandbox"] is True
    (saved,) = data["files"]
    image = Image.open(saved["path"])
    assert image.format == "PNG" and image.width > image.height
    assert Path(saved["path"]).parent == out


def test_generate_bad_input_is_one_sentence_and_nothing_runs(tmp_path: Path) -> None:
    proc = subprocess.run(
        [KIE, "generate", "nano-banana-pro", "--prompt", "x", "-i", "aspect_ratio=16-9", "-o", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env(tmp_path),
        timeout=60,
    )
    assert proc.returncode == 2
    assert "did you mean '16:9'" in proc.stderr and "Traceback" not in proc.stderr
    assert "sandbox" not in proc.stderr  # rejected before any connection was made


def test_generate_unknown_model_and_unreadable_input_file(tmp_path: Path) -> None:
    proc = subprocess.run(
        [KIE, "generate", "nano-bananna"], capture_output=True, text=True, env=env(tmp_path), timeout=60
    )
    assert proc.returncode == 2 and "Did you mean" in proc.stderr and "Traceback" not in proc.stderr
    proc = subprocess.run(
        [KIE, "generate", "nano-banana-pro", "--input-json", str(tmp_path / "missing.json")],
        capture_output=True,
        text=True,
        env=env(tmp_path),
        timeout=60,
    )
    assert proc.returncode == 2 and "Cannot read" in proc.stderr and "Traceback" not in proc.stderr


def test_sandbox_starts_fast_prints_url_and_key_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    started = time.monotonic()
    proc = subprocess.Popen(
        [KIE, "sandbox", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(tmp_path),
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        key_line = proc.stdout.readline()
        url = first.split("listening on ", 1)[1].split()[0]
        key = key_line.split("sample API key: ", 1)[1].strip()
        credit = httpx.get(
            f"{url}/api/v1/chat/credit", headers={"Authorization": f"Bearer {key}"}, timeout=5
        ).json()
        elapsed = time.monotonic() - started
        assert credit["code"] == 200
        print(f"kie sandbox answered {elapsed:.2f}s after launch")
    finally:
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "Traceback" not in err


def test_generate_records_credits_from_the_balance_when_kie_reports_none(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    """Flux Kontext answers without `creditsConsumed`: the ledger takes the balance delta instead."""
    store = f"sqlite:///{tmp_path / 'ledger.db'}"
    run_env = env(tmp_path) | {
        "KIE_API_KEY": sandbox.api_key,
        "KIE_BASE_URL": sandbox.url,
        "KIE_UPLOAD_BASE_URL": sandbox.url,
        "KIE_STORE_URL": store,
        "KIE_POLL_SCALE": str(sandbox.config.time_scale),
    }
    command = [KIE, "generate", "flux-kontext-pro", "--prompt", "a kite", "-o", str(tmp_path), "--json"]
    proc = subprocess.run(command, capture_output=True, text=True, env=run_env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    (task,) = sandbox.state.tasks.values()
    assert task.credits_consumed > 0 and json.loads(proc.stdout)["credits"] == task.credits_consumed
    (job,) = Ledger(store).jobs()
    assert job["actual_credits"] == task.credits_consumed
    sources = [e["detail"].get("credits_from") for e in Ledger(store).events_of(job["id"]) if e["detail"]]
    assert "balance delta" in sources


def test_a_bad_poll_scale_is_one_sentence(tmp_path: Path) -> None:
    proc = subprocess.run(
        [KIE, "generate", "nano-banana-pro", "--prompt", "x"],
        capture_output=True,
        text=True,
        # A closed local port, so nothing could ever reach api.kie.ai even if the check moved.
        env=env(tmp_path)
        | {"KIE_API_KEY": "sk-x", "KIE_BASE_URL": "http://127.0.0.1:9", "KIE_POLL_SCALE": "fast"},
        timeout=60,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "KIE_POLL_SCALE must be a positive number" in proc.stderr
