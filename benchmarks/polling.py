"""Status requests per task, wall time and detection latency: kie's adaptive polling vs the seeds' loop.

The seeds recommend polling every 2 seconds, at most 60 times. Both clients run against the same sandbox
configuration (the catalogue's per-model generation times with jitter, time-scaled, in a separate
process), each on a fresh sandbox so request counts are separate. Figures are in real (unscaled) seconds.

    .venv/bin/python benchmarks/polling.py --tasks 200 --time-scale 0.25
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from dataclasses import dataclass

import httpx

from benchmarks._sandbox import SandboxProcess
from kie.client import AsyncKie
from kie.client._base import async_transport
from kie.config import Settings, Timeouts
from kie.protocol.polling import PollPolicy

MODELS = [
    "bytedance/seedream-v4-text-to-image",
    "nano-banana-pro",
    "google/imagen4-fast",
    "kling-2.6/text-to-video",
]
EXTRA: dict[str, dict[str, object]] = {
    "kling-2.6/text-to-video": {"sound": False, "duration": "5", "aspect_ratio": "16:9"},
}


@dataclass
class Outcome:
    name: str
    tasks: int
    status_requests: int
    wall: float
    latencies: list[float]
    not_fetched: int


def jobs(count: int) -> list[tuple[str, dict[str, object]]]:
    return [
        (m, {**EXTRA.get(m, {}), "prompt": f"scene {n}"})
        for n in range(count)
        for m in [MODELS[n % len(MODELS)]]
    ]


def latencies(sandbox: SandboxProcess, seen: dict[str, float], scale: float) -> list[float]:
    """Unscaled seconds from a task completing in the sandbox to the client noticing."""
    done = {t["taskId"]: t["completeTime"] / 1000 for t in sandbox.state()["tasks"] if t["completeTime"]}
    return [max(0.0, at - done[task]) / scale for task, at in seen.items() if task in done]


def start(scale: float) -> SandboxProcess:
    return SandboxProcess(
        "--time-scale",
        str(scale),
        "--rate-limit",
        "off",
        "--status-rate-limit",
        "off",
        "--max-running",
        "100000",
    )


async def run_kie(count: int, scale: float) -> Outcome:
    with start(scale) as sandbox:
        settings = Settings(
            api_key=sandbox.key,
            base_url=sandbox.url,
            upload_base_url=sandbox.url,
            timeouts=Timeouts(task_deadline=3600),
        )
        seen: dict[str, float] = {}
        failures = 0
        began = time.monotonic()
        with tempfile.TemporaryDirectory():
            async with AsyncKie(
                settings=settings,
                poll=PollPolicy(scale=scale),
                create_interval=None,
                status_reads_per_second=0,
                max_connections=100,
            ) as client:

                async def one(model: str, values: dict[str, object]) -> None:
                    nonlocal failures
                    try:
                        sub = await client.submit(model, values)
                        await client.wait(sub.task_id, model)
                        seen[sub.task_id] = time.time()
                    except Exception:
                        failures += 1

                await asyncio.gather(*(one(m, v) for m, v in jobs(count)))
        wall = (time.monotonic() - began) / scale
        return Outcome(
            "kie adaptive",
            count,
            sandbox.requests("recordInfo"),
            wall,
            latencies(sandbox, seen, scale),
            failures,
        )


async def run_seed_loop(count: int, scale: float) -> Outcome:
    with start(scale) as sandbox:
        seen: dict[str, float] = {}
        failures = 0
        began = time.monotonic()
        limits = httpx.Limits(max_connections=100)
        async with httpx.AsyncClient(
            base_url=sandbox.url,
            headers={"Authorization": f"Bearer {sandbox.key}"},
            transport=async_transport(limits),
            timeout=60,
        ) as http:

            async def one(model: str, values: dict[str, object]) -> None:
                nonlocal failures
                body = (
                    await http.post("/api/v1/jobs/createTask", json={"model": model, "input": values})
                ).json()
                task_id = body["data"]["taskId"]
                for _ in range(60):
                    await asyncio.sleep(2 * scale)
                    data = (await http.get("/api/v1/jobs/recordInfo", params={"taskId": task_id})).json()[
                        "data"
                    ]
                    if data and data["state"] in ("success", "fail"):
                        seen[task_id] = time.time()
                        return
                failures += 1  # gave up after 60 polls: a paid result this loop never fetches

            await asyncio.gather(*(one(m, v) for m, v in jobs(count)))
        wall = (time.monotonic() - began) / scale
        return Outcome(
            "seed loop (2 s, 60x)",
            count,
            sandbox.requests("recordInfo"),
            wall,
            latencies(sandbox, seen, scale),
            failures,
        )


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--time-scale", type=float, default=0.25)
    args = parser.parse_args()
    results = [
        asyncio.run(run_kie(args.tasks, args.time_scale)),
        asyncio.run(run_seed_loop(args.tasks, args.time_scale)),
    ]
    print(f"{args.tasks} tasks over {', '.join(MODELS)}; time scale {args.time_scale}; real seconds")
    head = ("client", "status req/task", "wall s", "notice p50 s", "notice p99 s", "not fetched")
    print(f"{head[0]:<22}{head[1]:>16}{head[2]:>9}{head[3]:>14}{head[4]:>14}{head[5]:>13}")
    for r in results:
        p50 = statistics.median(r.latencies) if r.latencies else float("nan")
        print(
            f"{r.name:<22}{r.status_requests / r.tasks:>16.2f}{r.wall:>9.1f}{p50:>14.1f}"
            f"{pct(r.latencies, 0.99):>14.1f}{r.not_fetched:>13}"
        )


if __name__ == "__main__":
    main()
