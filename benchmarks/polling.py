"""Status requests per task and completion-to-notice: kie's polling with and without learned durations,
against the seeds' loop.

The seeds recommend polling every 2 seconds, at most 60 times. Every client runs against the same sandbox
configuration (the catalogue's per-model generation times with 25 % log-normal jitter, time-scaled, in a
separate process), each on a fresh sandbox so request counts are separate. "Without priors" clients start
from the catalogue's typical durations; all tasks are submitted at once, so none learns from another.
"With priors" clients first load the durations of a finished batch from its ledger (`load_priors`): the
batch engine's own run without priors is that batch. Figures are in real (unscaled) seconds; "/ run" is
each task's time to notice divided by its own generation time.

    .venv/bin/python -m benchmarks.polling --tasks 200 --time-scale 0.25
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from benchmarks._sandbox import SandboxProcess
from kie.client import AsyncKie
from kie.client._base import async_transport
from kie.config import Settings, Timeouts
from kie.protocol.polling import PollClock, PollPolicy
from kie.runner.engine import BatchRunner, RunOptions
from kie.runner.plan import plan_batch
from kie.runner.priors import load_priors
from kie.store import DONE, Ledger

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
    latencies: list[float]  # seconds from done in the sandbox to noticed
    ratios: list[float]  # the same, over the task's own generation time
    not_fetched: int


def jobs(count: int) -> list[tuple[str, dict[str, object]]]:
    return [
        (m, {**EXTRA.get(m, {}), "prompt": f"scene {n}"})
        for n in range(count)
        for m in [MODELS[n % len(MODELS)]]
    ]


def outcome(
    name: str, sandbox: SandboxProcess, seen: dict[str, float], scale: float, count: int, began: float
) -> Outcome:
    """Time to notice per task (unscaled), from when the sandbox finished it to when the client knew."""
    wall = (time.monotonic() - began) / scale
    state = sandbox.state()
    done = {t["taskId"]: t for t in state["tasks"] if t["completeTime"]}
    latencies, ratios = [], []
    for task_id, at in seen.items():
        task = done.get(task_id)
        if task is None:
            continue
        late = max(0.0, at - task["completeTime"] / 1000) / scale
        run = (task["completeTime"] - task["createTime"]) / 1000 / scale
        latencies.append(late)
        ratios.append(late / run)
    status = sum(r["count"] for r in state["requests"] if r["endpoint"] == "recordInfo")
    return Outcome(name, count, status, wall, latencies, ratios, count - len(latencies))


_SEEDS = iter(range(1, 1000))


def start(scale: float) -> SandboxProcess:
    """A fresh sandbox, each with its own seed: a run with priors meets new durations, not a replay of
    the run it learned from."""
    return SandboxProcess(
        "--time-scale",
        str(scale),
        "--seed",
        str(next(_SEEDS)),
        "--rate-limit",
        "off",
        "--status-rate-limit",
        "off",
        "--max-running",
        "100000",
    )


def client_for(sandbox: SandboxProcess, policy: PollPolicy) -> AsyncKie:
    settings = Settings(
        api_key=sandbox.key,
        base_url=sandbox.url,
        upload_base_url=sandbox.url,
        timeouts=Timeouts(task_deadline=3600),
    )
    return AsyncKie(
        settings=settings,
        poll=policy,
        create_interval=None,
        status_reads_per_second=0,
        max_connections=100,
    )


async def run_sdk(name: str, count: int, policy: PollPolicy, learned: PollClock | None) -> Outcome:
    """`AsyncKie.submit` then `AsyncKie.wait` per task, all at once."""
    scale = policy.scale
    with start(scale) as sandbox:
        seen: dict[str, float] = {}
        began = time.monotonic()
        async with client_for(sandbox, policy) as client:
            if learned is not None:
                client.config.learned = learned

            async def one(model: str, values: dict[str, object]) -> None:
                sub = await client.submit(model, values)
                await client.wait(sub.task_id, model)
                seen[sub.task_id] = time.time()

            results = await asyncio.gather(*(one(m, v) for m, v in jobs(count)), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            print(f"{name}: {len(failures)} tasks failed, e.g. {failures[0]!r}")
        return outcome(name, sandbox, seen, scale, count, began)


async def run_engine(
    name: str, count: int, policy: PollPolicy, ledger: Ledger, batch_id: str, workdir: Path
) -> Outcome:
    """`BatchRunner` over `ledger`, every row in flight at once; with priors from the ledger's earlier
    batches, loaded the way the engine would load them."""
    rows = workdir / f"{batch_id}.jsonl"
    rows.write_text(
        "\n".join(json.dumps({"id": f"r{n}", "model": m, **v}) for n, (m, v) in enumerate(jobs(count)))
    )
    out = workdir / batch_id
    ledger.ensure_batch(batch_id, source=str(rows), output_dir=str(out), options={})
    ledger.add_jobs(batch_id, plan_batch(rows).jobs)
    scale = policy.scale
    with start(scale) as sandbox:
        began = time.monotonic()
        async with client_for(sandbox, policy) as client:
            load_priors(ledger, client.config.learned)
            options = RunOptions(output_dir=out, concurrency=count + 1, create_interval=0.0)
            await BatchRunner(ledger, client, batch_id, options).run()
        records = ledger.jobs(batch_id=batch_id)
        seen = {j["task_id"]: j["completed_at"] for j in records if j["state"] == DONE and j["completed_at"]}
        return outcome(name, sandbox, seen, scale, count, began)


async def run_seed_loop(count: int, scale: float) -> Outcome:
    with start(scale) as sandbox:
        seen: dict[str, float] = {}
        began = time.monotonic()
        limits = httpx.Limits(max_connections=100)
        async with httpx.AsyncClient(
            base_url=sandbox.url,
            headers={"Authorization": f"Bearer {sandbox.key}"},
            transport=async_transport(limits),
            timeout=60,
        ) as http:

            async def one(model: str, values: dict[str, object]) -> None:
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
                # gave up after 60 polls: a paid result this loop never fetches

            await asyncio.gather(*(one(m, v) for m, v in jobs(count)))
        return outcome("seed loop (2 s, 60x)", sandbox, seen, scale, count, began)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def run_all(count: int, policy: PollPolicy, *, engine: bool, seeds: bool) -> list[Outcome]:
    """The SDK without priors; the engine without and with them (its first batch is what the others
    learn from); the SDK with them; the seeds' loop."""
    results = [await run_sdk("AsyncKie, no priors", count, policy, None)]
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        ledger = Ledger(f"sqlite:///{workdir / 'ledger.db'}")
        try:
            results.append(await run_engine("engine, no priors", count, policy, ledger, "learn", workdir))
            if engine:
                results.append(await run_engine("engine, priors", count, policy, ledger, "again", workdir))
            results.append(await run_sdk("AsyncKie, priors", count, policy, load_priors(ledger)))
        finally:
            ledger.close()
    if seeds:
        results.append(await run_seed_loop(count, policy.scale))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--time-scale", type=float, default=0.25)
    parser.add_argument(
        "--quantiles",
        default=",".join(f"{q:g}" for q in PollPolicy().quantiles),
        help="where learned polls go, e.g. 0.02,0.1,0.25,0.45,0.65,0.8,0.92,0.98 (more requests, less wait)",
    )
    parser.add_argument("--skip-engine", action="store_true", help="leave out the engine's run with priors")
    parser.add_argument("--skip-seeds", action="store_true", help="leave out the seeds' loop")
    args = parser.parse_args()
    quantiles = tuple(float(q) for q in args.quantiles.split(",") if q.strip())
    policy = PollPolicy(scale=args.time_scale, quantiles=quantiles)
    results = asyncio.run(run_all(args.tasks, policy, engine=not args.skip_engine, seeds=not args.skip_seeds))
    print(
        f"{args.tasks} tasks over {', '.join(MODELS)}; time scale {args.time_scale}; "
        f"learned polls at quantiles {args.quantiles}; real seconds"
    )
    head = ("client", "status/task", "wall s", "p50 s", "p99 s", "p50 / run", "p99 / run", "not fetched")
    print(f"{head[0]:<22}" + "".join(f"{h:>12}" for h in head[1:]))
    for r in results:
        p50 = statistics.median(r.latencies) if r.latencies else float("nan")
        ratio50 = statistics.median(r.ratios) if r.ratios else float("nan")
        print(
            f"{r.name:<22}{r.status_requests / r.tasks:>12.2f}{r.wall:>12.1f}{p50:>12.1f}"
            f"{pct(r.latencies, 0.99):>12.1f}{ratio50:>12.0%}{pct(r.ratios, 0.99):>12.0%}{r.not_fetched:>12}"
        )


if __name__ == "__main__":
    main()
