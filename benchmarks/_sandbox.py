"""Run `kie sandbox` as its own process, so a benchmark's client never shares a GIL with the server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

KIE = str(Path(sys.executable).parent / "kie")


class SandboxProcess:
    def __init__(self, *args: str, key: str = "bench") -> None:
        self.key = key
        command = [KIE, "sandbox", "--port", "0", "--api-key", key, "--max-image-side", "64", *args]
        env = {k: v for k, v in os.environ.items() if not k.startswith("KIE_")}
        self.proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline()
        if "listening on" not in first:
            self.proc.kill()
            raise RuntimeError(
                f"sandbox did not start: {first}{self.proc.stderr.read() if self.proc.stderr else ''}"
            )
        self.url = first.split("listening on ", 1)[1].split()[0]

    def state(self) -> dict[str, Any]:
        data: dict[str, Any] = httpx.get(f"{self.url}/_sandbox/state", timeout=60).json()
        return data

    def requests(self, endpoint: str) -> int:
        return sum(r["count"] for r in self.state()["requests"] if r["endpoint"] == endpoint)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    def __enter__(self) -> SandboxProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
