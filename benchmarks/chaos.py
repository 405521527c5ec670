"""Chaos: every sandbox fault at once, webhooks with pipelines, two batch processes on one batch, kills.

A sandbox runs in this process with a webhook key and random (seeded) rates for every fault it knows. One
`kie serve` and two `kie batch run FILE --public-url URL` processes work on the same batch, and both batch
processes and the receiver are SIGKILLed at random (seeded) moments and restarted (`kie batch resume`, and
`kie serve` on the same port). Afterwards `kie batch resume` runs until nothing is left to do, and the
script prints what must never happen next to its target. It measures and always exits 0; a missed line
says TARGET MISSED.

    .venv/bin/python -m benchmarks.chaos                     # 300 rows, 10 kills, SQLite
    .venv/bin/python -m benchmarks.chaos --store postgres --json

Kie retries a callback after 1, 5 and 15 minutes. Scaled by 0.01 that is 0.6, 3 and 9 s, less than a
`kie serve` restart takes on a loaded 2-core machine, so callbacks would run out of retries only because
the clock is compressed; `--callback-retries` keeps them at 1, 5 and 15 real seconds instead.

A batch process is only ever stopped by the script's kills, except when the whole ledger stands still for
`--stall` seconds with work left: then the live batch processes are hung, and they are killed, counted
and restarted, so one hang does not end the measurement. Only loopback traffic: the sandbox, the
receiver and PostgreSQL on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy

from kie.runner.plan import batch_id_for, plan_batch
from kie.sandbox.server import SandboxServer, free_socket
from kie.sandbox.state import Fault, SandboxConfig, SandboxState, SandboxTask
from kie.store import DONE, RUNNING, SUBMITTING, SUCCEEDED, UNKNOWN, Ledger, Record

KIE = str(Path(sys.executable).parent / "kie")
POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
MODELS = ("bytedance/seedream-v4-text-to-image", "google/imagen4-fast", "nano-banana-pro", "z-image")
PIPELINE = [{"model": "recraft/crisp-upscale"}]
# Every fault kind the sandbox knows, on the endpoints where it means something. Status reads get the
# transient kinds too, so the receiver's re-reads and the safety-net polls also meet them.
FAULTS = {
    "createTask": ("429", "433", "455", "500", "505", "drop_after_create", "drop", "slow", "malformed"),
    "recordInfo": ("429", "455", "500", "drop", "slow", "malformed"),
    "generation": ("fail_generation",),
    "results": ("expire_urls",),
    "callback": ("callback_fail", "callback_duplicate"),
}
LIVE = (SUBMITTING, RUNNING, SUCCEEDED)
TARGETS = ("batch-a", "batch-b", "serve")


def fault_rates(rng: random.Random, low: float, high: float) -> dict[str, float]:
    return {
        f"{endpoint}:{kind}": round(rng.uniform(low, high), 3)
        for endpoint, kinds in FAULTS.items()
        for kind in kinds
    }


def write_rows(path: Path, count: int) -> int:
    """Write the batch file; every third row has a pipeline step. Returns how many do."""
    lines, piped = [], 0
    for n in range(count):
        model = MODELS[n % len(MODELS)]
        row: dict[str, Any] = {"id": f"r{n}", "model": model, "prompt": f"chaos poster {n}"}
        if model == "z-image":
            row["aspect_ratio"] = "1:1"
        if n % 3 == 0:
            row["then"] = PIPELINE
            piped += 1
        lines.append(json.dumps(row))
    path.write_text("\n".join(lines) + "\n")
    return piped


@contextlib.contextmanager
def fresh_store(kind: str, work: Path, base: str) -> Iterator[tuple[str, str | None]]:
    """A store URL nobody has used, and its PostgreSQL schema (dropped afterwards), as tests/conftest.py."""
    if kind == "sqlite":
        yield f"sqlite:///{work / 'ledger.db'}", None
        return
    schema = "kie_chaos_" + secrets.token_hex(4)
    admin = sqlalchemy.create_engine(base)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in base else "?"
    try:
        yield f"{base}{separator}options=-csearch_path%3D{schema}", schema
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


def count_faults(state: SandboxState) -> Counter[str]:
    """Count the faults the sandbox actually serves, by `endpoint:kind`."""
    served: Counter[str] = Counter()
    take = state.take_fault

    def counted(endpoint: str, kinds: tuple[str, ...] | None = None) -> Fault | None:
        fault = take(endpoint, kinds)
        if fault is not None:
            served[f"{endpoint}:{fault.kind}"] += 1
        return fault

    state.take_fault = counted  # type: ignore[method-assign]
    return served


def callbacks_settled(state: SandboxState) -> bool:
    """Every task has ended and its callback was either answered 2xx or ran out of retries."""
    attempts = 1 + len(state.config.callback_retries)
    with state.lock:
        tasks = [t for t in state.tasks.values() if t.callback_url]
        delivered, exhausted = set(), set()
        for record in state.callbacks:
            if record.status is not None and 200 <= record.status < 300:
                delivered.add(record.task_id)
            elif record.attempt >= attempts:
                exhausted.add(record.task_id)
    return all(t.terminal and (t.task_id in delivered or t.task_id in exhausted) for t in tasks)


def kill(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()


@dataclass
class Run:
    """The processes of one run and what was done to them."""

    work: Path
    env: dict[str, str]
    ledger: Ledger
    batch_file: Path
    batch_id: str
    budget: float
    port: int
    deadline: float
    stall: float
    started: int = 0
    kills: list[dict[str, Any]] = field(default_factory=list)
    stalls: list[dict[str, Any]] = field(default_factory=list)
    exits: list[int] = field(default_factory=list)  # batch processes that ended on their own
    serve_exits: list[int] = field(default_factory=list)
    timed_out: int = 0
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def public(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        """Start `kie ARGS` with its output in files, searched for secrets afterwards."""
        self.started += 1
        stem = self.work / "logs" / f"{self.started:03d}-{name}"
        stem.parent.mkdir(exist_ok=True)
        with open(f"{stem}.out", "wb") as out, open(f"{stem}.err", "wb") as err:
            proc = subprocess.Popen([KIE, *args], env=self.env, stdout=out, stderr=err)
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        """Leave no process of the run behind, whatever ended the run."""
        for proc in self.procs:
            if proc.poll() is None:
                kill(proc)

    def serve(self) -> subprocess.Popen[bytes]:
        out = self.work / "serve-out"
        proc = self.start("serve", ["serve", "--port", str(self.port), "-o", str(out), "--json"])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"kie serve exited with code {proc.returncode} at start; see its log.")
            try:
                httpx.post(f"{self.public}/kie/callback/none", content=b"{}", timeout=1)
                return proc
            except httpx.TransportError:
                time.sleep(0.05)
        kill(proc)
        raise SystemExit(f"kie serve did not listen on port {self.port} within 30 s; see its log.")

    def worker(self, name: str) -> subprocess.Popen[bytes]:
        if self.ledger.batch(self.batch_id) is None:  # killed before it wrote the batch: run the file again
            command = ["batch", "run", str(self.batch_file), "-o", str(self.work / "out"), "--rate", "50/1"]
            command += ["--max-credits", repr(self.budget), "--public-url", self.public, "--json"]
            return self.start(name, command)
        return self.start(name, ["batch", "resume", self.batch_id, "--public-url", self.public, "--json"])

    def work_left(self) -> bool:
        """Anything a batch process would still do: jobs in flight, or pending jobs it may submit now
        (a step whose parent never got done is not work: no run will ever submit it)."""
        if self.ledger.batch(self.batch_id) is None:
            return True
        counts = self.ledger.counts(self.batch_id)
        return any(counts.get(state) for state in LIVE) or bool(self.ledger.ready_ids(self.batch_id))

    def kill(self, target: str, proc: subprocess.Popen[bytes]) -> None:
        kill(proc)
        self.kills.append({"target": target, "pid": proc.pid, "at": time.time()})

    def wait(self, procs: dict[str, subprocess.Popen[bytes]]) -> bool:
        """Wait for the processes to end. When the ledger stands still for `stall` seconds with work
        left, the live ones are hung: kill and record them. Returns whether any was."""
        marker, since = self.ledger.last_event_id(), time.monotonic()
        while any(p.poll() is None for p in procs.values()):
            now = time.monotonic()
            if now >= self.deadline:
                for proc in procs.values():
                    if proc.poll() is None:
                        kill(proc)
                        self.timed_out += 1
                return False
            time.sleep(0.2)
            latest = self.ledger.last_event_id()
            if latest != marker:
                marker, since = latest, now
            elif now - since >= self.stall and self.work_left():
                for name, proc in procs.items():
                    if proc.poll() is None:
                        kill(proc)
                        self.stalls.append({"process": name, "pid": proc.pid, "at": time.time()})
                return True
        return False

    def settle_callbacks(self, state: SandboxState) -> bool:
        while not callbacks_settled(state):
            if time.monotonic() >= self.deadline:
                return False
            time.sleep(0.1)
        return True


# -- the run ----------------------------------------------------------------------------------------------
def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    rng = random.Random(args.seed)
    api_key = "sk-chaos-" + secrets.token_hex(16)
    webhook_key = "whk-chaos-" + secrets.token_hex(16)
    rates = fault_rates(rng, args.fault_min, args.fault_max)
    batch_file = work / "batch.jsonl"
    piped = write_rows(batch_file, args.rows)
    plan = plan_batch(batch_file)
    budget = args.budget if args.budget is not None else plan.known_credits
    config = SandboxConfig(
        api_keys=(api_key,),
        webhook_key=webhook_key,
        time_scale=args.time_scale,
        seed=args.seed,
        rate_limit=None,
        status_rate_limit=None,
        max_running=100_000,
        max_image_side=64,
        credits=max(100_000.0, 10 * plan.known_credits),
        fault_rates=rates,
        callback_retries=tuple(float(x) / args.time_scale for x in args.callback_retries.split(",")),
    )
    with (
        SandboxServer(config) as sandbox,
        fresh_store(args.store, work, args.postgres_url) as (store_url, schema),
    ):
        served = count_faults(sandbox.state)
        env = {k: v for k, v in os.environ.items() if not k.startswith("KIE_")}
        env.update(
            {
                "KIE_API_KEY": api_key,
                "KIE_BASE_URL": sandbox.url,
                "KIE_UPLOAD_BASE_URL": sandbox.url,
                "KIE_STORE_URL": store_url,
                "KIE_WEBHOOK_KEY": webhook_key,
                "KIE_POLL_SCALE": str(args.time_scale),
                "KIE_CONFIG": str(work / "none.toml"),
                "KIE_HOME": str(work / "home"),
            }
        )
        with free_socket() as sock:
            port = int(sock.getsockname()[1])
        ledger = Ledger(store_url)
        began = time.monotonic()
        r = Run(
            work,
            env,
            ledger,
            batch_file,
            batch_id_for(batch_file),
            budget,
            port,
            deadline=began + args.timeout,
            stall=args.stall,
        )
        try:
            serve = r.serve()
            workers = {"batch-a": r.worker("batch-a"), "batch-b": r.worker("batch-b")}
            while len(r.kills) < args.kills and time.monotonic() < r.deadline:
                time.sleep(rng.uniform(args.kill_min, args.kill_max))
                if serve.poll() is not None:
                    r.serve_exits.append(serve.returncode)
                    serve = r.serve()
                for name, proc in list(workers.items()):
                    if proc.poll() is not None and r.work_left():
                        r.exits.append(proc.returncode)
                        workers[name] = r.worker(name)
                if all(p.poll() is not None for p in workers.values()) and not r.work_left():
                    break
                target = rng.choice(TARGETS)
                victim = serve if target == "serve" else workers[target]
                if victim.poll() is not None:
                    continue
                r.kill(target, victim)
                if target == "serve":
                    serve = r.serve()
                else:
                    workers[target] = r.worker(target)
                r.kills[-1]["back"] = time.time()
            kill_phase = time.monotonic() - began
            r.wait(workers)  # a hung one is killed: the final resumes below take over
            r.exits += [p.returncode for p in workers.values() if p.returncode != -signal.SIGKILL]
            settled = r.settle_callbacks(sandbox.state)
            resumes: list[int] = []
            while r.work_left() and len(resumes) < args.tries and time.monotonic() < r.deadline:
                before = ledger.counts(r.batch_id)
                proc = r.worker("resume")
                hung = r.wait({"resume": proc})
                resumes.append(proc.returncode)
                settled = r.settle_callbacks(sandbox.state)
                if not hung and ledger.counts(r.batch_id) == before:
                    break  # nothing moved: another try would not either
            serve.send_signal(signal.SIGINT)
            try:
                serve.wait(timeout=30)
            except subprocess.TimeoutExpired:
                kill(serve)
            wall = time.monotonic() - began
            report = measure(r, sandbox.state)
            left = r.work_left()
        finally:
            r.stop_all()
            ledger.close()
        found = find_secrets(work, {"API key": api_key, "webhook key": webhook_key}, store_url, schema)
    report["figures"]["secrets found"] = len(found)
    report["details"]["secrets found"] = found
    report.update(
        {
            "rows": args.rows,
            "pipeline_rows": piped,
            "store": args.store,
            "seed": args.seed,
            "time_scale": args.time_scale,
            "fault_rates": rates,
            "faults_served": dict(sorted(served.items())),
            "budget": budget,
            "kills": len(r.kills),
            "kill_log": r.kills,
            "kills_by_target": dict(Counter(k["target"] for k in r.kills)),
            "kills_wanted": args.kills,
            "worker_exits_on_their_own": r.exits,
            "serve_exits_on_its_own": r.serve_exits,
            "final_resumes": resumes,
            "processes_started": r.started,
            "timed_out_processes": r.timed_out,
            "callbacks_settled": settled,
            "work_left": left,
            "kill_phase_s": round(kill_phase, 1),
            "wall_s": round(wall, 1),
        }
    )
    report["details"] = {
        name: [
            dict(item, log=log_lines(work / "logs", item["job"])) if "job" in item else item for item in items
        ]
        for name, items in report["details"].items()
    }
    return report


# -- what happened ---------------------------------------------------------------------------------------
def task_key(values: dict[str, Any]) -> str:
    return str(values.get("prompt") or values.get("image"))


def sha256(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def claimed_by(events: list[Record]) -> tuple[int | None, float | None]:
    """The pid of the process that last claimed the job for its create (from the lease owner,
    `host:pid:nonce`), and when."""
    claims = [e for e in events if e["to_state"] == SUBMITTING]
    if not claims:
        return None, None
    owner = str((claims[-1]["detail"] or {}).get("owner", ""))
    pid = owner.split(":")[1] if owner.count(":") >= 2 else ""
    return (int(pid) if pid.isdigit() else None), float(claims[-1]["at"])


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values) or [float("nan")]
    return {
        name: round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)
        for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0))
    }


def measure(r: Run, state: SandboxState) -> dict[str, Any]:
    """Match every sandbox task to its job (by the callback token in its URL, else by its input) and
    count what must never happen."""
    ledger, budget = r.ledger, r.budget
    jobs = ledger.jobs(batch_id=r.batch_id)
    by_token = {j["callback_token"]: j for j in jobs}
    by_input = {(j["model"], task_key(j["input"])): j for j in jobs}
    with state.lock:
        tasks = list(state.tasks.values())
        spent = state.spent
        delivered: dict[str, list[list[Any]]] = defaultdict(list)
        to_wall = time.time() - state.now()  # callback records carry the sandbox's monotonic clock
        for c in state.callbacks:
            delivered[c.task_id].append([round(c.at + to_wall, 3), c.attempt, c.status, c.error])
    owned: dict[str, list[SandboxTask]] = defaultdict(list)
    strays = []
    for task in tasks:
        token = (task.callback_url or "").rstrip("/").rsplit("/", 1)[-1]
        job = by_token.get(token) or by_input.get((task.model, task_key(task.input)))
        if job is None:
            strays.append({"task": task.task_id, "model": task.model, "state": task.state})
        else:
            owned[job["id"]].append(task)
    killed = {k["pid"]: k for k in r.kills}
    hung = {s["pid"]: s for s in r.stalls}

    def about(job: Record, why: str, events: list[Record]) -> dict[str, Any]:
        return {
            "job": job["id"],
            "row": job["row_key"],
            "step": job["step"],
            "model": job["model"],
            "state": job["state"],
            "why": why,
            "tasks": [[t.task_id, t.state] for t in owned[job["id"]]],
            "callbacks": [delivered[t.task_id] for t in owned[job["id"]]],
            "events": [[round(e["at"], 3), e["from_state"], e["to_state"], e["detail"]] for e in events],
        }

    twice, lost, after_kill, after_hang, after_answer = [], [], [], [], []
    per_kill: Counter[int] = Counter()
    unreachable = 0  # lost jobs whose only evidence, the callback, never got through
    transit = []  # seconds from a job's claim (just before its create leaves) to its task on the sandbox
    for job in jobs:
        mine = owned[job["id"]]
        events = ledger.events_of(job["id"])
        claimed_at = claimed_by(events)[1]
        if claimed_at is not None and len(mine) == 1:
            transit.append(mine[0].created_at + to_wall - claimed_at)
        if len(mine) > 1:
            twice.append(about(job, f"{len(mine)} tasks", events))
        if job["state"] == DONE:
            saved = ledger.files_of(job["id"])
            broken = [f["path"] for f in saved if sha256(Path(f["path"])) != f["sha256"]]
            if not saved or broken:
                why = f"done but files missing or changed: {broken or 'none recorded'}"
                lost.append(about(job, why, events))
        elif any(t.state == "success" for t in mine):
            why = "its task succeeded but the job is not done"
            calls = [c for t in mine for c in delivered[t.task_id]]
            if job["state"] == UNKNOWN and calls and all(c[2] is None for c in calls):
                why += "; every callback attempt found the receiver down"
                unreachable += 1
            lost.append(about(job, why, events))
        if job["state"] != UNKNOWN or mine:
            continue
        into = [e for e in events if e["to_state"] == UNKNOWN][-1]
        if "lease expired" not in str((into["detail"] or {}).get("reason", "")):
            after_answer.append(about(job, "the create's answer was lost", events))
            continue
        pid, at = claimed_by(events)
        stop = killed.get(pid or -1) or hung.get(pid or -1)
        why = "its process stopped mid-send"
        if stop is not None and at is not None:
            why += f"; claimed {stop['at'] - at:.2f} s before the process was killed"
        item = about(job, why, events)
        if pid in hung:
            after_hang.append(item)
        else:
            after_kill.append(item)
            per_kill[pid or -1] += 1
    states = Counter(j["state"] for j in jobs)
    blocked = states.get("pending", 0) - len(ledger.ready_ids(r.batch_id))
    return {
        "jobs": len(jobs),
        "tasks": len(tasks),
        "states": dict(states),
        "blocked_steps": blocked,
        "credits_charged": spent,
        "unknown_per_killed_process": sorted(per_kill.values(), reverse=True),
        "create_transit_s": percentiles(transit),
        "stalls": r.stalls,
        "figures": {
            "paid twice": len(twice),
            "results lost": len(lost),
            "  lost, receiver down at every try": unreachable,
            "overspend": max(0.0, spent - budget),
            "hung batch processes": len(r.stalls),
            "unknown, no task, after a kill": len(after_kill),
            "unknown, no task, after a hang": len(after_hang),
            "unknown, no task, after a lost answer": len(after_answer),
            "tasks matching no job": len(strays),
        },
        "details": {
            "paid twice": twice,
            "results lost": lost,
            "unknown, no task, after a kill": after_kill,
            "unknown, no task, after a hang": after_hang,
            "tasks matching no job": strays,
        },
    }


def find_secrets(work: Path, keys: dict[str, str], store_url: str, schema: str | None) -> list[str]:
    """Where either key appears: any file of the run (the SQLite ledger and its WAL, results, manifests,
    every process's captured output) and, on PostgreSQL, every row of every table as text."""
    found = []
    for path in sorted(p for p in work.rglob("*") if p.is_file()):
        data = path.read_bytes()
        found += [f"{name} in {path.relative_to(work)}" for name, key in keys.items() if key.encode() in data]
    if schema is not None:
        engine = sqlalchemy.create_engine(store_url)
        with engine.connect() as conn:
            tables = conn.execute(
                sqlalchemy.text("SELECT table_name FROM information_schema.tables WHERE table_schema = :s"),
                {"s": schema},
            ).scalars()
            for table in list(tables):
                rows = conn.execute(sqlalchemy.text(f'SELECT CAST(t AS text) FROM "{schema}"."{table}" AS t'))
                text = "\n".join(row[0] for row in rows)
                found += [f"{name} in table {table}" for name, key in keys.items() if key in text]
        engine.dispose()
    return found


def log_lines(logs: Path, job_id: str, limit: int = 6) -> list[str]:
    """The first output lines of any process that mention the job, for the lead to read."""
    lines: list[str] = []
    for path in sorted(logs.iterdir()):
        for line in path.read_text(errors="replace").splitlines():
            if job_id in line:
                lines.append(f"{path.name}: {line[:400]}")
                if len(lines) >= limit:
                    return lines
    return lines


# -- the table -------------------------------------------------------------------------------------------
def targets(report: dict[str, Any]) -> dict[str, tuple[str, bool | None]]:
    """Each figure's target as printed, and whether it is met (None: no target, shown for context)."""
    figures, kills = report["figures"], report["kills"]
    return {
        "paid twice": ("0", figures["paid twice"] == 0),
        "results lost": ("0", figures["results lost"] == 0),
        "  lost, receiver down at every try": ("-", None),
        "overspend": ("0", figures["overspend"] <= 1e-9),
        "secrets found": ("0", figures["secrets found"] == 0),
        "unknown, no task, after a kill": (
            f"<= {kills} (1 per kill)",
            figures["unknown, no task, after a kill"] <= kills,
        ),
        "hung batch processes": ("0", figures["hung batch processes"] == 0),
        "unknown, no task, after a hang": ("0", figures["unknown, no task, after a hang"] == 0),
        "unknown, no task, after a lost answer": ("-", None),
        "tasks matching no job": ("0", figures["tasks matching no job"] == 0),
    }


def show(report: dict[str, Any]) -> None:
    kills = report["kills"]
    by_target = ", ".join(f"{n} {t}" for t, n in sorted(report["kills_by_target"].items()))
    print(
        f"chaos: {report['rows']} rows ({report['pipeline_rows']} with a pipeline step), "
        f"{report['jobs']} jobs, {report['tasks']} sandbox tasks, store {report['store']}, "
        f"seed {report['seed']}, time scale {report['time_scale']}"
    )
    print(f"kills: {kills} of {report['kills_wanted']} ({by_target or 'none'})")
    rates = sorted(report["fault_rates"].values())
    served = sum(report["faults_served"].values())
    print(
        f"faults: {len(rates)} endpoint:kind pairs at {rates[0]:.1%} to {rates[-1]:.1%} each; "
        f"{served} served: " + ", ".join(f"{k} {n}" for k, n in report["faults_served"].items())
    )
    print(
        f"final states: {', '.join(f'{n} {s}' for s, n in sorted(report['states'].items()))}; "
        f"{report['blocked_steps']} steps wait on a parent that is not done"
    )
    print(
        f"credits: {report['credits_charged']:g} charged, budget {report['budget']:g}; batch exits on their "
        f"own {report['worker_exits_on_their_own']}; final resumes {report['final_resumes']}; unknown per "
        f"killed batch process {report['unknown_per_killed_process']}"
    )
    print(f"create transit, claim to task on the sandbox, s: {report['create_transit_s']}")
    if not report["callbacks_settled"] or report["work_left"] or report["timed_out_processes"]:
        print(
            f"unfinished: callbacks settled {report['callbacks_settled']}, work left {report['work_left']}, "
            f"processes stopped at the deadline {report['timed_out_processes']}"
        )
    print(f"{'figure':<40}{'value':>16}   target")
    per_kill = report["figures"]["unknown, no task, after a kill"] / kills if kills else 0.0
    for name, (target, met) in targets(report).items():
        value = report["figures"][name]
        shown = f"{value:g}" if isinstance(value, float) else str(value)
        if name == "unknown, no task, after a kill":
            shown += f" ({per_kill:.1f}/kill)"
        print(f"{name:<40}{shown:>16}   {target}{'   TARGET MISSED' if met is False else ''}")
    print(f"{'wall time s':<40}{report['wall_s']:>16}")
    for name, items in report["details"].items():
        for item in items[:10]:
            print(f"  {name}: {json.dumps(item, default=str)}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=300)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--postgres-url", default=POSTGRES, help="server for --store postgres")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--time-scale", type=float, default=0.01)
    parser.add_argument("--fault-min", type=float, default=0.02, help="lowest random rate per fault")
    parser.add_argument("--fault-max", type=float, default=0.05, help="highest random rate per fault")
    parser.add_argument("--kill-min", type=float, default=0.4, help="seconds between kills, at least")
    parser.add_argument("--kill-max", type=float, default=1.6, help="seconds between kills, at most")
    parser.add_argument(
        "--callback-retries",
        default="1,5,15",
        help="seconds (real, not scaled) before Kie's callback retries",
    )
    parser.add_argument("--budget", type=float, help="--max-credits (default: the plan's estimate)")
    parser.add_argument("--tries", type=int, default=20, help="final `kie batch resume` runs, at most")
    parser.add_argument(
        "--stall", type=float, default=30.0, help="seconds of a still ledger that mean a hang"
    )
    parser.add_argument("--timeout", type=float, default=540.0, help="seconds for the whole run")
    parser.add_argument("--keep", action="store_true", help="keep the work folder and print its path")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kie-chaos-"))
    try:
        report = run(args, work)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    if args.keep:
        report["workdir"] = str(work)
    if args.json:
        print(json.dumps(report, default=str))
    else:
        show(report)
        if args.keep:
            print(f"work folder: {work}")


if __name__ == "__main__":
    main()
