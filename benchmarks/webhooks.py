"""Load on `kie serve`: a burst of signed callbacks, 10 % duplicates and 5 % forged, over loopback.

`kie serve` runs as its own process over a ledger of N jobs, pointed at a sandbox process for its
re-reads. The script prints the callbacks per second sustained, the p99 answer time, and two counts that
must be 0: genuine callbacks lost (not answered 2xx) and forged ones wrongly accepted.

A second phase measures processing: P jobs whose tasks really exist (and have finished) on the sandbox
get one genuine callback each, in one burst. It prints the processing rate (jobs reaching `done` per
second: each needs an authoritative re-read under the account's 10 reads per second, shared through the
ledger) and completion to file: from the callback's answer to the file on disk, p50 and p99, for a burst
and for callbacks arriving below the read limit.

    .venv/bin/python -m benchmarks.webhooks --callbacks 10000 --process 300
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


MINIMAL_APP = """
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

async def hook(request):
    await request.body()
    return JSONResponse({"code": 200, "msg": "success"})

app = Starlette(routes=[Route("/kie/callback/{token}", hook, methods=["POST"])])
"""


def wait_listening(url: str) -> None:
    """Until the server at `url` answers (about 10 s at most)."""
    for _ in range(100):
        try:
            httpx.post(f"{url}/kie/callback/warmup", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)


def minimal_rate(tmp: str, tokens: list[str], concurrency: int) -> float:
    """Callbacks per second that a minimal Starlette app on uvicorn answers under the same burst: the
    ceiling for this machine, to compare `kie serve` with."""
    Path(tmp, "minimal_app.py").write_text(MINIMAL_APP)
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "minimal_app:app", "--port", str(port), "--log-level", "warning"],
        cwd=tmp,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_listening(url)
        return asyncio.run(burst(url, tokens, 0.10, 0.05, concurrency))["per_second"]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)


def real_jobs(ledger: Ledger, sandbox: SandboxProcess, count: int) -> list[tuple[str, str, str]]:
    """`count` running jobs whose tasks exist and have finished on the sandbox: (job, token, task)."""
    from kie import catalog
    from kie.client import Kie
    from kie.config import Settings
    from kie.protocol import flows

    settings = Settings(api_key=sandbox.key, base_url=sandbox.url, upload_base_url=sandbox.url)
    spec = catalog.get("z-image")
    ids = ledger.add_jobs(
        None, [NewJob(spec.id, {"prompt": f"q{n}", "aspect_ratio": "1:1"}) for n in range(count)]
    )
    out = []
    with Kie(settings=settings, create_interval=None) as client:
        for job_id in ids:
            claimed = ledger.claim_for_submit(job_id, 60)
            assert claimed is not None
            task = client.run(flows.submit(spec, dict(claimed["input"]), None)).task_id
            ledger.mark_running(claimed, task)
            out.append((job_id, claimed["callback_token"], task))
        for _, _, task in out:
            client.wait(task, spec, poll_now=True)
    return out


async def process(
    url: str, ledger: Ledger, jobs: list[tuple[str, str, str]], gap: float
) -> tuple[float, list[float]]:
    """Send each job's genuine callback (`gap` seconds apart; 0 = one burst); return the seconds until
    every job was done and each job's answer-to-file latency."""
    answered: dict[str, float] = {}
    async with httpx.AsyncClient(timeout=30) as client:
        began = time.time()

        async def send(job_id: str, token: str, task: str) -> None:
            stamp = int(time.time())
            headers = {
                "Content-Type": "application/json",
                "X-Webhook-Timestamp": str(stamp),
                "X-Webhook-Signature": sign(KEY, task, stamp),
            }
            response = await client.post(f"{url}/kie/callback/{token}", content=body(task), headers=headers)
            if response.status_code < 300:
                answered[job_id] = time.time()

        sends = []
        for job in jobs:
            sends.append(asyncio.create_task(send(*job)))
            if gap:
                await asyncio.sleep(gap)
        await asyncio.gather(*sends)
        while ledger.counts().get("done", 0) < len(jobs) + done_before(ledger, jobs):
            await asyncio.sleep(0.05)
            if time.time() - began > 600:
                break
        elapsed = time.time() - began
    latencies = []
    for job_id, _, _ in jobs:
        job = ledger.job(job_id)
        if job is not None and job["downloaded_at"] and job_id in answered:
            latencies.append(job["downloaded_at"] - answered[job_id])
    return elapsed, sorted(latencies)


def done_before(ledger: Ledger, jobs: list[tuple[str, str, str]]) -> int:
    ids = {j for j, _, _ in jobs}
    return sum(1 for job in ledger.jobs(states=["done"]) if job["id"] not in ids)


def quantile(values: list[float], q: float) -> float:
    return values[int(q * (len(values) - 1))] if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--callbacks", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument(
        "--process", type=int, default=200, help="jobs with real tasks for the processing phase"
    )
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
            wait_listening(url)
            # Processing first: the answer-rate burst below names tasks the sandbox does not have,
            # and their re-reads would queue ahead under the same read limit.
            half = args.process // 2
            jobs = real_jobs(ledger, sandbox, args.process)
            burst_time, burst_lat = asyncio.run(process(url, ledger, jobs[:half], 0.0))
            paced_time, paced_lat = asyncio.run(process(url, ledger, jobs[half:], 0.2))
            result = asyncio.run(burst(url, tokens, 0.10, 0.05, args.concurrency))
        finally:
            serve.send_signal(signal.SIGINT)
            try:
                serve.wait(timeout=10)
            except subprocess.TimeoutExpired:
                serve.kill()
        minimal_rate_result = minimal_rate(tmp, tokens, args.concurrency)
    ceiling = minimal_rate_result
    print(
        f"{result['sent']:.0f} callbacks ({args.callbacks} genuine, ~10 % duplicates, ~5 % forged), "
        f"{args.concurrency} concurrent senders, loopback"
    )
    print(
        f"minimal Starlette app on this machine: {ceiling:.0f} callbacks/s; kie serve reaches "
        f"{result['per_second'] / ceiling:.2f} of it"
    )
    print(f"{'callbacks/s':>12}{'p99 answer ms':>15}{'lost':>8}{'wrongly accepted':>18}")
    print(
        f"{result['per_second']:>12.0f}{result['p99_ms']:>15.1f}{result['lost']:>8.0f}{result['wrongly_accepted']:>18.0f}"
    )
    print()
    print("processing (real tasks; each callback re-read under the shared 10 reads/s):")
    print(f"{'phase':<28}{'jobs':>6}{'done/s':>9}{'file p50 ms':>13}{'file p99 ms':>13}")
    for name, count, spent, lat in (
        ("burst", half, burst_time, burst_lat),
        ("5 callbacks/s (below limit)", args.process - half, paced_time, paced_lat),
    ):
        print(
            f"{name:<28}{count:>6}{count / spent:>9.1f}{quantile(lat, 0.5) * 1000:>13.0f}"
            f"{quantile(lat, 0.99) * 1000:>13.0f}"
        )


if __name__ == "__main__":
    main()
