"""Batch benchmark: kie's runner vs the seeds' thread pool (poll every 2 s, at most 60 times).

Both run against the same sandbox configuration, each on a fresh sandbox in its own process: the real
account limit (20 creates per 10 s) and the catalogue's per-model generation times (25 % jitter), all
time-scaled. Each client runs in a child process so its peak RSS and CPU time are its own. Figures
are in real (unscaled) seconds.

    .venv/bin/python -m benchmarks.batch --rows 1000 --time-scale 0.01
    .venv/bin/python -m benchmarks.batch --rows 10000 --in-flight       # 10,000 tasks running at once

Lower bound on makespan: rows ÷ create rate + the slowest single generation.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from benchmarks._sandbox import SandboxProcess

MODELS = ["bytedance/seedream-v4-text-to-image", "google/imagen4-fast", "nano-banana-pro", "z-image"]


def rows(count: int) -> list[dict[str, Any]]:
    out = []
    for n in range(count):
        model = MODELS[n % len(MODELS)]
        row: dict[str, Any] = {"id": f"r{n}", "model": model, "prompt": f"bench {n}"}
        if model == "z-image":
            row["aspect_ratio"] = "1:1"
        out.append(row)
    return out


def usage() -> dict[str, float]:
    me = resource.getrusage(resource.RUSAGE_SELF)
    return {"rss_mb": me.ru_maxrss / 1024, "cpu_s": me.ru_utime + me.ru_stime}


# -- the two clients (each runs in a child process) ------------------------------------------------
def run_kie(url: str, key: str, count: int, scale: float, interval: float, workdir: Path) -> dict[str, Any]:
    from kie.client import AsyncKie
    from kie.config import Settings, Timeouts
    from kie.protocol.polling import PollPolicy
    from kie.runner.engine import BatchRunner, RunOptions
    from kie.runner.plan import plan_batch
    from kie.store import Ledger

    batch = workdir / "batch.jsonl"
    batch.write_text("\n".join(json.dumps(r) for r in rows(count)))
    ledger = Ledger(f"sqlite:///{workdir / 'ledger.db'}")
    plan = plan_batch(batch)
    ledger.ensure_batch("bench", source=str(batch), output_dir=str(workdir / "out"), options={})
    ledger.add_jobs("bench", plan.jobs)
    settings = Settings(
        api_key=key, base_url=url, upload_base_url=url, timeouts=Timeouts(task_deadline=36000)
    )

    async def main() -> None:
        async with AsyncKie(
            settings=settings,
            poll=PollPolicy(scale=scale),
            create_interval=None,
            status_reads_per_second=0,
            max_connections=64,
        ) as client:
            options = RunOptions(output_dir=workdir / "out", concurrency=count + 1, create_interval=interval)
            await BatchRunner(ledger, client, "bench", options).run()

    started = time.time()
    asyncio.run(main())
    finished = time.time()
    downloaded = {
        j["task_id"]: j["downloaded_at"] for j in ledger.jobs(batch_id="bench") if j["downloaded_at"]
    }
    return {"started": started, "finished": finished, "downloaded": downloaded, **usage()}


def run_baseline(url: str, key: str, count: int, scale: float, workdir: Path, workers: int) -> dict[str, Any]:
    downloaded: dict[str, float] = {}
    lock = threading.Lock()
    out = workdir / "out"
    out.mkdir(parents=True, exist_ok=True)
    client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60)

    def one(row: dict[str, Any]) -> None:
        model = row.pop("model")
        row.pop("id")
        while True:  # the seeds: on 429 "wait, then retry"
            body = client.post("/api/v1/jobs/createTask", json={"model": model, "input": row}).json()
            if body["code"] != 429:
                break
            time.sleep(1 * scale)
        task_id = body["data"]["taskId"]
        for _ in range(60):
            time.sleep(2 * scale)
            data = client.get("/api/v1/jobs/recordInfo", params={"taskId": task_id}).json()["data"]
            if data and data["state"] == "success":
                for n, link in enumerate(json.loads(data["resultJson"])["resultUrls"]):
                    (out / f"{task_id}-{n}.bin").write_bytes(httpx.get(link).content)
                with lock:
                    downloaded[task_id] = time.time()
                return

    started = time.time()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(one, rows(count)))
    return {"started": started, "finished": time.time(), "downloaded": downloaded, **usage()}


# -- orchestration ------------------------------------------------------------------------------------
def child(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        if args.child == "kie":
            result = run_kie(args.url, args.key, args.rows, args.time_scale, args.interval, Path(tmp))
        else:
            result = run_baseline(args.url, args.key, args.rows, args.time_scale, Path(tmp), args.workers)
    sys.stdout.write(json.dumps(result))


def measure(name: str, args: argparse.Namespace, interval: float) -> dict[str, Any]:
    rate_flag = "off" if args.in_flight else "20/10"  # real seconds: the sandbox scales its window
    with SandboxProcess(
        "--time-scale",
        str(args.time_scale),
        "--rate-limit",
        rate_flag,
        "--status-rate-limit",
        "off",
        "--max-running",
        "1000000",
    ) as sandbox:
        command = [
            sys.executable,
            "-m",
            "benchmarks.batch",
            "--child",
            name,
            "--url",
            sandbox.url,
            "--key",
            sandbox.key,
            "--rows",
            str(args.rows),
            "--time-scale",
            str(args.time_scale),
            "--interval",
            str(interval),
            "--workers",
            str(args.workers),
        ]
        proc = subprocess.run(command, capture_output=True, text=True, env=os.environ.copy())
        if proc.returncode != 0:
            raise SystemExit(f"{name} failed:\n{proc.stderr[-3000:]}")
        result: dict[str, Any] = json.loads(proc.stdout)
        state = sandbox.state()
    done_at = {t["taskId"]: t["completeTime"] / 1000 for t in state["tasks"] if t["completeTime"]}
    durations = [(t["completeTime"] - t["createTime"]) / 1000 for t in state["tasks"] if t["completeTime"]]
    lat = sorted(
        max(0.0, at - done_at[task]) / args.time_scale
        for task, at in result["downloaded"].items()
        if task in done_at
    )
    requests = {r["endpoint"]: 0 for r in state["requests"]}
    for r in state["requests"]:
        requests[r["endpoint"]] += r["count"]
    makespan = (result["finished"] - result["started"]) / args.time_scale
    create_rate = 1 / (interval / args.time_scale) if interval > 0 else float("inf")
    bound = args.rows / create_rate + (max(durations) / args.time_scale if durations else 0)
    return {
        "name": name,
        "makespan": makespan,
        "wall": result["finished"] - result["started"],
        "bound": bound,
        "ratio": makespan / bound if bound else float("nan"),
        "r429": requests.get("createTask:429", 0),
        "status_per_job": requests.get("recordInfo", 0) / args.rows,
        "p50": statistics.median(lat) if lat else float("nan"),
        "p99": lat[int(0.99 * (len(lat) - 1))] if lat else float("nan"),
        "rss": result["rss_mb"],
        "cpu_per_1000": result["cpu_s"] / args.rows * 1000,
        "fetched": len(lat),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--time-scale", type=float, default=0.01)
    parser.add_argument("--workers", type=int, default=50, help="baseline thread pool size")
    parser.add_argument("--in-flight", action="store_true", help="no rate limit: every task runs at once")
    parser.add_argument("--kie-only", action="store_true")
    parser.add_argument("--child", choices=["kie", "baseline"])
    parser.add_argument("--url")
    parser.add_argument("--key")
    parser.add_argument("--interval", type=float, default=0.0)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    interval = 0.0 if args.in_flight else 0.5 * args.time_scale
    results = [measure("kie", args, interval)]
    if not args.kie_only:
        results.append(measure("baseline", args, interval))
    print(
        f"{args.rows} rows over {', '.join(MODELS)}; time scale {args.time_scale}; "
        f"{'no rate limit (all in flight)' if args.in_flight else 'rate limit 20 per 10 s'}; real seconds"
    )
    head = (
        "client",
        "makespan/bound",
        "429s",
        "status/job",
        "file p50 s",
        "file p99 s",
        "peak RSS MB",
        "CPU s/1000",
        "fetched",
        "wall s",
    )
    print("".join(f"{h:>15}" for h in head))
    for r in results:
        print(
            f"{r['name']:>15}{r['ratio']:>15.3f}{r['r429']:>15}{r['status_per_job']:>15.2f}{r['p50']:>15.1f}"
            f"{r['p99']:>15.1f}{r['rss']:>15.0f}{r['cpu_per_1000']:>15.1f}{r['fetched']:>15}{r['wall']:>15.0f}"
        )


if __name__ == "__main__":
    main()
