"""The crash test: `kie batch run` is SIGKILLed at random moments, resumed each time, and in the end
every row's task exists at most once, every unresolved row is `unknown`, and every result is on disk.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from kie.sandbox.server import SandboxServer
from kie.store import DONE, UNKNOWN, Ledger

KIE = str(Path(sys.executable).parent / "kie")
ROWS = 400
KILLS = 10


def run_env(sandbox: SandboxServer, store_url: str, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIE_")}
    env.update(
        {
            "KIE_API_KEY": sandbox.api_key,
            "KIE_BASE_URL": sandbox.url,
            "KIE_UPLOAD_BASE_URL": sandbox.url,
            "KIE_STORE_URL": store_url,
            "KIE_POLL_SCALE": str(sandbox.config.time_scale),
            "KIE_CONFIG": str(tmp_path / "none.toml"),
            "KIE_HOME": str(tmp_path / "home"),
        }
    )
    return env


@pytest.mark.parametrize(
    "sandbox", [{"time_scale": 0.004, "rate_limit": None, "status_rate_limit": None}], indirect=True
)
def test_sigkill_at_random_moments_never_pays_twice(
    sandbox: SandboxServer, store_url: str, tmp_path: Path
) -> None:
    batch = tmp_path / "batch.jsonl"
    batch.write_text(
        "\n".join(
            json.dumps(
                {
                    "id": f"row-{n}",
                    "model": "bytedance/seedream-v4-text-to-image",
                    "prompt": f"crash test poster {n}",
                }
            )
            for n in range(ROWS)
        )
    )
    out = tmp_path / "out"
    command = [
        KIE,
        "batch",
        "run",
        str(batch),
        "-o",
        str(out),
        "--rate",
        "30/1",  # slow enough that ten kills land before the batch ends
        "--concurrency",
        "60",
        "--json",
    ]
    env = run_env(sandbox, store_url, tmp_path)
    rng = random.Random(2026)
    kills = 0
    while kills < KILLS:
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(rng.uniform(0.8, 2.6))
        if proc.poll() is not None:
            break  # it finished before we could kill it: nothing left to interrupt
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
    assert kills >= KILLS, "the batch finished too early to be killed ten times"
    final = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert final.returncode in (0, 3), final.stderr[-2000:]

    ledger = Ledger(store_url)
    jobs = ledger.jobs()
    states = Counter(j["state"] for j in jobs)
    assert len(jobs) == ROWS and set(states) <= {DONE, UNKNOWN}, states
    assert final.returncode == (3 if states[UNKNOWN] else 0)  # unknown rows are work left to decide

    created = Counter(str(t.input["prompt"]) for t in sandbox.state.tasks.values())
    assert max(created.values()) == 1, "a row was paid for twice"
    for job in jobs:
        prompt = job["input"]["prompt"]
        if job["state"] == DONE:
            assert created[prompt] == 1 and job["task_id"] in sandbox.state.tasks
            (saved,) = ledger.files_of(job["id"])
            assert hashlib.sha256(Path(saved["path"]).read_bytes()).hexdigest() == saved["sha256"]
        else:
            assert created[prompt] <= 1  # unknown: maybe created, never twice

    manifest = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert {m["job"] for m in manifest if m["state"] == DONE} == {j["id"] for j in jobs if j["state"] == DONE}
    listed = subprocess.run(
        [KIE, "jobs", "list", "--state", "unknown", "--json", "--limit", "1000"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    assert {j["id"] for j in json.loads(listed.stdout)} == {j["id"] for j in jobs if j["state"] == UNKNOWN}
    print(f"{kills} kills; final states {dict(states)}; {len(sandbox.state.tasks)} tasks created")
