"""Scale benchmark: a 100,000-row batch file, and the ledger's cost per job.

Part one plans a file of mixed rows (ten models, some with a pipeline step) into a fresh ledger, on
SQLite and on PostgreSQL (a throwaway schema), and reports how soon the first create could start, the
planning rate and the peak RSS while planning. It then finishes the ledger directly (every job moved
to `done` with one set-based UPDATE, a file row each, rather than 100,000 generations) and times
`kie batch status`, `kie jobs list` and rewriting the manifest on it.

Part two runs a smaller batch against the sandbox, each side in its own process as `benchmarks/batch.py`
does, and counts the SQL statements per job with a `before_cursor_execute` listener (the shared status
read limit is counted apart, since it grows with polls, not jobs), the CPU per 1,000 jobs and the
makespan over its lower bound.

    .venv/bin/python -m benchmarks.scale                       # everything, 100,000 and 2,000 rows
    .venv/bin/python -m benchmarks.scale --rows 5000 --jobs 300 --skip-postgres
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import event

from benchmarks._sandbox import SandboxProcess

POSTGRES = os.environ.get("KIE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MODELS = [
    "bytedance/seedream-v4-text-to-image",
    "google/imagen4-fast",
    "nano-banana-pro",
    "z-image",
    "google/imagen4",
    "google/imagen4-ultra",
    "bytedance/seedream",
    "flux-2/pro-text-to-image",
    "qwen/text-to-image",
    "grok-imagine/text-to-image",
]
SANDBOX_MODELS = MODELS[:4]


def mixed_rows(count: int, models: list[str]) -> list[dict[str, Any]]:
    out = []
    for n in range(count):
        model = models[n % len(models)]
        row: dict[str, Any] = {
            "id": f"r{n}",
            "model": model,
            "prompt": f"scale row {n}: a lighthouse at dusk",
        }
        if model == "z-image":
            row["aspect_ratio"] = "1:1"
        out.append(row)
    return out


def usage() -> dict[str, float]:
    me = resource.getrusage(resource.RUSAGE_SELF)
    return {"rss_mb": me.ru_maxrss / 1024, "cpu_s": me.ru_utime + me.ru_stime}


class Statements:
    """Counts what the ledger sends: statements (BEGIN aside), transactions, and status-read slots."""

    def __init__(self, engine: Any) -> None:
        self.statements = self.transactions = self.read_gate = 0
        event.listen(engine, "before_cursor_execute", self._statement)
        event.listen(engine, "begin", self._begin)

    def _statement(self, _conn: Any, _cursor: Any, sql: str, params: Any, _ctx: Any, _many: bool) -> None:
        if sql.lstrip().upper().startswith("BEGIN"):
            return
        values = params.values() if isinstance(params, dict) else params or ()
        if "status-reads" in [v for v in values if isinstance(v, str)]:
            self.read_gate += 1
        else:
            self.statements += 1

    def _begin(self, _conn: Any) -> None:
        self.transactions += 1

    def reset(self) -> None:
        self.statements = self.transactions = self.read_gate = 0


# -- part two: a batch against the sandbox (child process) -------------------------------------------
def run_jobs(url: str, key: str, count: int, scale: float, interval: float, store: str) -> dict[str, Any]:
    from kie.client import AsyncKie
    from kie.config import Settings, Timeouts
    from kie.protocol.polling import PollPolicy
    from kie.runner.engine import BatchRunner, RunOptions
    from kie.runner.plan import plan_batch
    from kie.store import Ledger

    workdir = Path(tempfile.mkdtemp(prefix="kie-scale-"))
    batch = workdir / "batch.jsonl"
    batch.write_text("\n".join(json.dumps(r) for r in mixed_rows(count, SANDBOX_MODELS)))
    ledger = Ledger(store)
    plan = plan_batch(batch)
    ledger.ensure_batch("bench", source=str(batch), output_dir=str(workdir / "out"), options={})
    ledger.add_jobs("bench", plan.jobs)
    settings = Settings(
        api_key=key, base_url=url, upload_base_url=url, timeouts=Timeouts(task_deadline=36000)
    )
    counter = Statements(ledger.engine)

    async def main() -> None:
        async with AsyncKie(
            settings=settings,
            poll=PollPolicy(scale=scale),
            create_interval=None,
            status_reads_per_second=0,
            max_connections=64,
        ) as client:
            options = RunOptions(output_dir=workdir / "out", concurrency=count + 1, create_interval=interval)
            runner = BatchRunner(ledger, client, "bench", options)
            await runner.run()

    before = usage()
    counter.reset()
    started = time.time()
    asyncio.run(main())
    finished = time.time()
    after = usage()
    done = ledger.counts("bench").get("done", 0)
    ledger.close()
    return {
        "started": started,
        "finished": finished,
        "done": done,
        "statements": counter.statements,
        "transactions": counter.transactions,
        "read_gate": counter.read_gate,
        "cpu_s": after["cpu_s"] - before["cpu_s"],
        "rss_mb": after["rss_mb"],
    }


def measure_jobs(args: argparse.Namespace, store: str) -> dict[str, Any]:
    with SandboxProcess(
        "--time-scale",
        str(args.time_scale),
        "--rate-limit",
        "20/10",
        "--status-rate-limit",
        "off",
        "--max-running",
        "1000000",
    ) as sandbox:
        command = [
            sys.executable,
            "-m",
            "benchmarks.scale",
            "--child",
            "--url",
            sandbox.url,
            "--key",
            sandbox.key,
            "--jobs",
            str(args.jobs),
            "--time-scale",
            str(args.time_scale),
            "--store",
            store,
        ]
        proc = subprocess.run(command, capture_output=True, text=True, env=os.environ.copy())
        if proc.returncode != 0:
            raise SystemExit(f"the sandbox run failed:\n{proc.stderr[-3000:]}")
        result: dict[str, Any] = json.loads(proc.stdout)
        state = sandbox.state()
    durations = [(t["completeTime"] - t["createTime"]) / 1000 for t in state["tasks"] if t["completeTime"]]
    reads = sum(r["count"] for r in state["requests"] if r["endpoint"] == "recordInfo")
    makespan = (result["finished"] - result["started"]) / args.time_scale
    bound = args.jobs * 0.5 + (max(durations) / args.time_scale if durations else 0.0)
    jobs = max(1, args.jobs)
    return {
        "done": result["done"],
        "statements_per_job": result["statements"] / jobs,
        "transactions_per_job": result["transactions"] / jobs,
        "read_gate_per_job": result["read_gate"] / jobs,
        "status_reads_per_job": reads / jobs,
        "cpu_per_1000": result["cpu_s"] / jobs * 1000,
        "ratio": makespan / bound if bound else float("nan"),
    }


# -- part one: planning and reading 100,000 rows -----------------------------------------------------
def fresh_schema(url: str) -> tuple[str, str]:
    """A throwaway PostgreSQL schema and the URL that opens the ledger in it."""
    from sqlalchemy import create_engine, text

    name = f"kie_scale_{os.getpid()}"
    engine = create_engine(url)
    with engine.begin() as c:
        c.execute(text(f"DROP SCHEMA IF EXISTS {name} CASCADE"))
        c.execute(text(f"CREATE SCHEMA {name}"))
    engine.dispose()
    sep = "&" if "?" in url else "?"
    return name, f"{url}{sep}options=-csearch_path%3D{name}"


def drop_schema(url: str, name: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as c:
        c.execute(text(f"DROP SCHEMA IF EXISTS {name} CASCADE"))
    engine.dispose()


def cli_seconds(*argv: str, env: dict[str, str]) -> float:
    started = time.perf_counter()
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "kie"), *argv], capture_output=True, text=True, env=env
    )
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"kie {' '.join(argv)} failed:\n{proc.stderr[-2000:]}")
    return elapsed


def vm_hwm(pid: int) -> float:
    """A live process's peak resident set so far, in MB."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def measure_planning(rows: int, store: str, workdir: Path) -> dict[str, Any]:
    """`kie batch run` on the file against a sandbox process, as a user runs it: the seconds to its
    first create and until planning completes, and its peak RSS meanwhile. A small budget stops the
    creates early; the run then only finishes planning the file."""
    from sqlalchemy import insert, select, text, update

    from kie.runner.finish import write_manifest
    from kie.runner.plan import batch_id_for
    from kie.store import Ledger
    from kie.store.schema import files, jobs

    path = workdir / f"scale-{rows}.jsonl"
    if not path.exists():
        path.write_text("\n".join(json.dumps(r) for r in mixed_rows(rows, MODELS)) + "\n")
    home = workdir / f"home-{len(store)}"
    with SandboxProcess(
        "--rate-limit", "off", "--status-rate-limit", "off", "--time-scale", "0.01"
    ) as sandbox:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KIE_")}
        env.update(
            KIE_API_KEY=sandbox.key,
            KIE_BASE_URL=sandbox.url,
            KIE_UPLOAD_BASE_URL=sandbox.url,
            KIE_STORE_URL=store,
            KIE_HOME=str(home),
            KIE_CONFIG=str(workdir / "none.toml"),
            KIE_POLL_SCALE="0.01",
        )
        command = [str(Path(sys.executable).parent / "kie"), "batch", "run", str(path), "--json"]
        command += ["-o", str(workdir / "out"), "--max-credits", "40", "--rate", "20/1"]
        started = time.perf_counter()
        proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        first_create = planned_at = float("nan")
        peak = 0.0
        for line in proc.stdout:
            peak = max(peak, vm_hwm(proc.pid))
            try:
                seen = json.loads(line)
            except ValueError:  # the closing report is indented JSON over several lines
                seen = {}
            seen = seen if isinstance(seen, dict) else {}
            if seen.get("event") == "submitting" and first_create != first_create:
                first_create = time.perf_counter() - started
            if seen.get("event") == "planning" and seen.get("complete"):
                planned_at = time.perf_counter() - started
        proc.wait()
    ledger = Ledger(store)
    batch_id = batch_id_for(path)
    planned = len(ledger.jobs(batch_id=batch_id))
    # Finish the ledger directly: every job done with one file, as a finished run would leave it.
    with ledger.engine.begin() as c:
        c.execute(update(jobs).where(jobs.c.batch_id == batch_id).values(state="done", task_id=jobs.c.id))
        ids = list(c.execute(select(jobs.c.id).where(jobs.c.batch_id == batch_id)).scalars())
        c.execute(
            files.delete().where(files.c.job_id.in_(select(jobs.c.id).where(jobs.c.batch_id == batch_id)))
        )
        for start in range(0, len(ids), 5000):
            c.execute(
                insert(files),
                [
                    {"job_id": i, "idx": 1, "url": f"https://x/{i}.png", "path": f"/out/{i}.png", "size": 1}
                    | {"sha256": "0" * 64}
                    for i in ids[start : start + 5000]
                ],
            )
    if ledger.engine.dialect.name == "postgresql":
        # What autovacuum does within minutes of a real run: its updates leave dead row versions.
        with ledger.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.execute(text(f"VACUUM ANALYZE {jobs.name}, {files.name}"))
    begun = time.perf_counter()
    write_manifest(ledger, batch_id, workdir / "out")
    manifest = time.perf_counter() - begun
    ledger.close()
    return {
        "jobs": planned,
        "first_create_s": first_create,
        "planning_s": planned_at,
        "rows_per_s": rows / planned_at,
        "peak_rss_mb": peak,
        "manifest_s": manifest,
        "status_s": cli_seconds("batch", "status", batch_id, "--json", env=env),
        "list_s": cli_seconds("jobs", "list", "--batch", batch_id, "--json", env=env),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000, help="rows of the planning file")
    parser.add_argument("--jobs", type=int, default=2000, help="rows run against the sandbox")
    parser.add_argument("--time-scale", type=float, default=0.01)
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--skip-planning", action="store_true")
    parser.add_argument("--skip-sandbox", action="store_true")
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--url")
    parser.add_argument("--key")
    parser.add_argument("--store")
    args = parser.parse_args()
    if args.child:
        out = run_jobs(args.url, args.key, args.jobs, args.time_scale, 0.5 * args.time_scale, args.store)
        sys.stdout.write(json.dumps(out))
        return
    backends = ([] if args.skip_sqlite else ["sqlite"]) + ([] if args.skip_postgres else ["postgresql"])
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for backend in backends:
            schema = None
            if backend == "sqlite":
                store = f"sqlite:///{workdir / 'jobs.db'}"
            else:
                schema, store = fresh_schema(POSTGRES)
            try:
                if not args.skip_planning:
                    p = measure_planning(args.rows, store, workdir)
                    print(
                        f"{backend}: {args.rows} rows planned into {p['jobs']} jobs: first create after "
                        f"{p['first_create_s']:.1f} s, planning complete after {p['planning_s']:.1f} s "
                        f"({p['rows_per_s']:.0f} rows/s, the validation pass included), peak RSS "
                        f"{p['peak_rss_mb']:.0f} MB; on the finished ledger: `kie batch status` "
                        f"{p['status_s']:.2f} s, `kie jobs list` {p['list_s']:.2f} s, "
                        f"manifest {p['manifest_s']:.2f} s",
                        flush=True,
                    )
                if not args.skip_sandbox:
                    r = measure_jobs(args, store)
                    print(
                        f"{backend}: {args.jobs} jobs against the sandbox: {r['done']} done, "
                        f"{r['statements_per_job']:.2f} statements/job in {r['transactions_per_job']:.2f} "
                        f"transactions, plus {r['read_gate_per_job']:.2f} read-gate statements/job "
                        f"({r['status_reads_per_job']:.2f} status reads/job); CPU {r['cpu_per_1000']:.1f} s "
                        f"per 1,000 jobs; makespan/bound {r['ratio']:.3f}",
                        flush=True,
                    )
            finally:
                if schema is not None:
                    drop_schema(POSTGRES, schema)


if __name__ == "__main__":
    main()
