"""Workers benchmark: 1, 2 and 4 `kie worker` processes on one ledger against one sandbox with the real
account limit (20 creates per 10 s, time-scaled), then 3 workers with one SIGKILLed every 60 s.

Each worker is a real `kie worker` process. The figures are in real (unscaled) seconds:

- makespan ÷ bound, where the makespan runs from the first create to the last file saved, and the bound
  is rows ÷ 2 creates per second + the slowest single generation;
- 429s, status calls per job and duplicate creates, counted by the sandbox;
- CPU seconds per 1,000 jobs per worker;
- for the kill run, jobs left `unknown` with no task per kill.

    .venv/bin/python -m benchmarks.workers --rows 2000 --time-scale 0.02
    .venv/bin/python -m benchmarks.workers --store sqlite

PostgreSQL is used when KIE_TEST_POSTGRES_URL (or --store URL) names one; each run gets a fresh schema.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import secrets
import signal
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks._sandbox import KIE, SandboxProcess
from benchmarks.batch import rows as mixed_rows


def fresh_store(kind: str, work: Path) -> tuple[str, str | None]:
    if kind == "sqlite":
        return f"sqlite:///{work / 'ledger.db'}", None
    import sqlalchemy

    base = kind if "://" in kind else os.environ["KIE_TEST_POSTGRES_URL"]
    schema = "kie_bench_" + secrets.token_hex(4)
    with sqlalchemy.create_engine(base).begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in base else "?"
    return f"{base}{separator}options=-csearch_path%3D{schema}", schema


def drop(kind: str, schema: str | None) -> None:
    if schema is None:
        return
    import sqlalchemy

    base = kind if "://" in kind else os.environ["KIE_TEST_POSTGRES_URL"]
    with sqlalchemy.create_engine(base).begin() as conn:
        conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(args: argparse.Namespace, workers: int, *, kill_every: float | None) -> dict[str, Any]:
    from kie.store import Ledger

    scale = args.time_scale
    work = Path(tempfile.mkdtemp(prefix="kie-workers-"))
    store, schema = fresh_store(args.store, work)
    with SandboxProcess(
        "--time-scale", str(scale), "--rate-limit", "20/10", "--max-running", "1000000"
    ) as sandbox:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KIE_")}
        env.update(
            {
                "KIE_API_KEY": sandbox.key,
                "KIE_BASE_URL": sandbox.url,
                "KIE_UPLOAD_BASE_URL": sandbox.url,
                "KIE_STORE_URL": store,
                "KIE_POLL_SCALE": str(scale),
                "KIE_CONFIG": str(work / "none.toml"),
                "KIE_HOME": str(work / "home"),
            }
        )
        batch = work / "batch.jsonl"
        batch.write_text("".join(json.dumps(r) + "\n" for r in mixed_rows(args.rows)))
        ledger = Ledger(store)
        submitted = subprocess.run(
            [KIE, "batch", "submit", str(batch), "-o", str(work / "out"), "--json"],
            env=env,
            capture_output=True,
            text=True,
        )
        if submitted.returncode != 0:
            raise SystemExit(submitted.stderr[-2000:])
        command = [KIE, "worker", "--until-idle", "--rate", f"20/{10 * scale:g}", "--json"]
        cpu_before = children_cpu()

        def start() -> subprocess.Popen[bytes]:
            return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        procs = [start() for _ in range(workers)]
        kills = 0
        rng = random.Random(7)
        next_kill = time.monotonic() + kill_every * scale if kill_every else float("inf")
        while any(p.poll() is None for p in procs):
            time.sleep(0.05)
            if time.monotonic() >= next_kill and ledger.counts().get("pending"):
                victim = rng.choice([p for p in procs if p.poll() is None])
                victim.send_signal(signal.SIGKILL)
                victim.wait()
                kills += 1
                procs = [p for p in procs if p is not victim] + [start()]
                next_kill = time.monotonic() + (kill_every or 0) * scale
        # A killed worker's last rows may need a worker that outlives the kills to finish them.
        while (
            ledger.counts().get("pending")
            or ledger.counts().get("running")
            or ledger.counts().get("succeeded")
        ):
            finisher = start()
            finisher.wait()
        cpu = children_cpu() - cpu_before
        state = sandbox.state()
        jobs = ledger.jobs()
    counts = Counter(j["state"] for j in jobs)
    requests: Counter[str] = Counter()
    for r in state["requests"]:
        requests[r["endpoint"]] += r["count"]
    prompts = Counter(
        json.dumps(t.get("param", {}).get("input", t.get("input")), sort_keys=True) for t in state["tasks"]
    )
    durations = [(t["completeTime"] - t["createTime"]) / 1000 for t in state["tasks"] if t["completeTime"]]
    first = min(j["submitted_at"] for j in jobs if j["submitted_at"])
    last = max(j["downloaded_at"] for j in jobs if j["downloaded_at"])
    makespan = (last - first) / scale
    # The sandbox reports times on its virtual clock, which runs at the time scale: already real seconds.
    bound = args.rows / 2.0 + (max(durations) if durations else 0.0)
    submitted = sorted(j["submitted_at"] for j in jobs if j["submitted_at"])
    spread = {
        "creates_s": round((submitted[-1] - submitted[0]) / scale, 1),
        "last_create_to_last_save_s": round((last - submitted[-1]) / scale, 1),
        "slowest_generation_s": round(max(durations), 1) if durations else None,
    }
    lost = sum(1 for j in jobs if j["state"] == "unknown" and not j["task_id"])
    drop(args.store, schema)
    return {
        "workers": workers,
        "kills": kills,
        "done": counts.get("done", 0),
        "states": dict(counts),
        "makespan_s": round(makespan, 1),
        "bound_s": round(bound, 1),
        "ratio": round(makespan / bound, 3),
        "r429": requests.get("createTask:429", 0),
        "status_per_job": round(requests.get("recordInfo", 0) / args.rows, 2),
        "duplicate_creates": len(state["tasks"]) - len(prompts) + sum(n - 1 for n in prompts.values()),
        "tasks": len(state["tasks"]),
        "cpu_per_1000_per_worker": round(cpu / args.rows * 1000 / max(1, workers), 2),
        "unknown_without_task_per_kill": round(lost / kills, 2) if kills else None,
        **spread,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--time-scale", type=float, default=0.02)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--kill-every", type=float, default=60.0, help="real seconds between kills")
    parser.add_argument("--no-kill", action="store_true")
    parser.add_argument(
        "--store",
        default="postgres" if os.environ.get("KIE_TEST_POSTGRES_URL") else "sqlite",
        help="sqlite, postgres (KIE_TEST_POSTGRES_URL) or a PostgreSQL URL",
    )
    args = parser.parse_args()
    results = [run(args, int(n), kill_every=None) for n in args.workers.split(",")]
    if not args.no_kill:
        results.append(run(args, 3, kill_every=args.kill_every))
    print(f"{args.rows} rows, time scale {args.time_scale}, store {args.store.split('://')[0]}")
    header = "workers kills ratio   429 status/job dup  cpu/1000/worker unknown/kill states"
    print(header)
    for r in results:
        print(
            f"{r['workers']:>7} {r['kills']:>5} {r['ratio']:<7} {r['r429']:>3} {r['status_per_job']:>10} "
            f"{r['duplicate_creates']:>4} {r['cpu_per_1000_per_worker']:>16} "
            f"{'-' if r['kills'] == 0 else r['unknown_without_task_per_kill']:>12} "
            f"{r['states']}"
        )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
