"""Load on `kie serve`: a burst of signed callbacks, 10 % duplicates and 5 % forged, over loopback.

`kie serve` runs as its own process over a ledger of N jobs, pointed at a sandbox process for its
re-reads. The script prints the callbacks per second sustained, the p99 answer time, and two counts that
must be 0: genuine callbacks lost (not answered 2xx) and forged ones wrongly accepted.

    .venv/bin/python -m benchmarks.webhooks --callbacks 10000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from benchmarks._sandbox import SandboxProcess
from kie.client._base import async_transport
from kie.sandbox.server import free_socket
from kie.store import Ledger, NewJob
from kie.webhooks import sign

KEY = "bench-webhook-key"
KIE = str(Path(sys.executable).parent / "kie")


def body(task_id: str) -> bytes:
    return json.dumps(
        {
            "code": 200,
            "msg": "Playground task completed successfully.",
            "data": {
                "taskId": task_id,
                "model": "nano-banana-pro",
                "state": "success",
                "param": "{}",
                "resultJson": json.dumps({"resultUrls": [f"https://tempfile.aiquickdraw.com/{task_id}.png"]}),
                "costTime": 12,
                "creditsConsumed": 18,
            },
        }
    ).encode()


async def burst(
    url: str, tokens: list[str], duplicates: float, forged: float, concurrency: int
) -> dict[str, float]:
    rng = random.Random(5)
    plan: list[tuple[str, str, str, bool]] = []  # token, task id, kind, genuine-first
    for n, token in enumerate(tokens):
        plan.append((token, f"task-{n}", "genuine", True))
        if rng.random() < duplicates:
            plan.append((token, f"task-{n}", "duplicate", False))
        if rng.random() < forged:
            plan.append((token, f"task-{n}", "forged", False))
    stamp = int(time.time())
    latencies: list[float] = []
    lost = wrongly_accepted = 0
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(
        transport=async_transport(httpx.Limits(max_connections=concurrency)), timeout=30
    ) as client:

        async def send(token: str, task_id: str, kind: str) -> None:
            nonlocal lost, wrongly_accepted
            key = "attacker" if kind == "forged" else KEY
            headers = {
                "Content-Type": "application/json",
                "X-Webhook-Timestamp": str(stamp),
                "X-Webhook-Signature": sign(key, task_id, stamp),
            }
            async with gate:
                started = time.perf_counter()
                response = await client.post(
                    f"{url}/kie/callback/{token}", content=body(task_id), headers=headers
                )
                latencies.append(time.perf_counter() - started)
            accepted = response.status_code < 300
            if kind == "genuine" and not accepted:
                lost += 1
            if kind == "forged" and accepted:
                wrongly_accepted += 1

        began = time.perf_counter()
        # Each genuine delivery goes first; its duplicate and forgery follow in a second wave.
        await asyncio.gather(*(send(t, task, k) for t, task, k, first in plan if first))
        await asyncio.gather(*(send(t, task, k) for t, task, k, first in plan if not first))
        elapsed = time.perf_counter() - began
    latencies.sort()
    return {
        "sent": len(plan),
        "per_second": len(plan) / elapsed,
        "p99_ms": latencies[int(0.99 * (len(latencies) - 1))] * 1000,
        "lost": lost,
        "wrongly_accepted": wrongly_accepted,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--callbacks", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, SandboxProcess("--rate-limit", "off") as sandbox:
        store = f"sqlite:///{Path(tmp) / 'ledger.db'}"
        ledger = Ledger(store)
        ids = ledger.add_jobs(
            None, [NewJob("nano-banana-pro", {"prompt": f"p{n}"}) for n in range(args.callbacks)]
        )
        tokens = [ledger.job(i)["callback_token"] for i in ids]  # type: ignore[index]
        port_socket = free_socket()
        port = port_socket.getsockname()[1]
        port_socket.close()
        env = {k: v for k, v in os.environ.items() if not k.startswith("KIE_")}
        env.update(
            {
                "KIE_API_KEY": sandbox.key,
                "KIE_BASE_URL": sandbox.url,
                "KIE_WEBHOOK_KEY": KEY,
                "KIE_CONFIG": str(Path(tmp) / "none.toml"),
                "KIE_HOME": tmp,
            }
        )
        serve = subprocess.Popen(
            [KIE, "serve", "--port", str(port), "--store", store, "-o", str(Path(tmp) / "out")],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            for _ in range(100):
                try:
                    httpx.post(f"{url}/kie/callback/warmup", timeout=1)
                    break
                except httpx.HTTPError:
                    time.sleep(0.1)
            result = asyncio.run(burst(url, tokens, 0.10, 0.05, args.concurrency))
        finally:
            serve.send_signal(signal.SIGINT)
            try:
                serve.wait(timeout=10)
            except subprocess.TimeoutExpired:
                serve.kill()
    print(
        f"{result['sent']:.0f} callbacks ({args.callbacks} genuine, ~10 % duplicates, ~5 % forged), "
        f"{args.concurrency} concurrent senders, loopback"
    )
    print(f"{'callbacks/s':>12}{'p99 answer ms':>15}{'lost':>8}{'wrongly accepted':>18}")
    print(
        f"{result['per_second']:>12.0f}{result['p99_ms']:>15.1f}{result['lost']:>8.0f}{result['wrongly_accepted']:>18.0f}"
    )


if __name__ == "__main__":
    main()
