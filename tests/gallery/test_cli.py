"""`kie gallery` as a user runs it: it prints a working URL with the session token."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from kie.store import Ledger, NewJob


def start(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    env = {
        **os.environ,
        "KIE_HOME": str(tmp_path / "home"),
        "KIE_CONFIG": str(tmp_path / "none.toml"),
        "COLUMNS": "300",
    }
    env.pop("KIE_API_KEY", None)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from kie.cli import main; main()",
            "gallery",
            "--no-open",
            "-o",
            str(tmp_path / "out"),
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    deadline = time.monotonic() + 60
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        found = re.search(r"Open: (http://127\.0\.0\.1:\d+/\?token=\S+)", line)
        if found:
            return proc, found.group(1)
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"no URL printed; stderr: {proc.stderr.read() if proc.stderr else ''}")


def test_kie_gallery_serves_the_ledger_at_the_printed_url(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger = Ledger(store)
    ledger.add_jobs(None, [NewJob("google/nano-banana", {"prompt": "a printed-url fox"})])
    ledger.close()
    proc, url = start(tmp_path, "--store", store)
    try:
        with httpx.Client(follow_redirects=True, timeout=30) as http:
            page = http.get(url)
            assert page.status_code == 200 and "a printed-url fox" in page.text
            assert "token=" not in str(page.url)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)


def test_store_and_sandbox_together_is_one_sentence(tmp_path: Path) -> None:
    env = {**os.environ, "KIE_HOME": str(tmp_path / "home"), "KIE_CONFIG": str(tmp_path / "none.toml")}
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from kie.cli import main; main()",
            "gallery",
            "--no-open",
            "--sandbox",
            "--store",
            "sqlite:///x.db",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert done.returncode == 2
    assert "cannot be combined with --sandbox" in done.stderr and "Traceback" not in done.stderr
