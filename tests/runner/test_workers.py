"""`kie worker` processes on one ledger: every row once, one account limit across them, a killed
worker's tasks finished by another, drains, pauses, priorities, and leases on the database clock."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from kie.sandbox.server import SandboxServer
from kie.store import ABANDONED, DONE, PENDING, RUNNING, Ledger
from kie.store.schema import files
from tests.runner.test_crash import run_env
from tests.runner.test_no_loss import assert_every_file_whole_and_its_own, rows, write

KIE = str(Path(sys.executable).parent / "kie")
SCALE = 0.05
# The account's real limit, 20 creates per 10 s, on the sandbox's scaled clock (20 per 0.5 s).
RATE = f"20/{10 * SCALE:g}"
LIMITED = {"time_scale": SCALE, "status_rate_limit": None}


def submit(env: dict[str, str], path: Path, out: Path, *extra: str) -> dict[str, Any]:
    done = subprocess.run(
        [KIE, "batch", "submit", str(path), "-o", str(out), "--json", *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


def start_worker(env: dict[str, str], *extra: str, log: Path | None = None) -> subprocess.Popen[str]:
    sink = log.open("w") if log is not None else subprocess.PIPE
    return subprocess.Popen(
        [KIE, "worker", "--rate", RATE, "--drain-timeout", "5", *extra],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=sink,
        text=True,
    )


def finish(procs: list[subprocess.Popen[str]], timeout: float = 300) -> None:
    for proc in procs:
        _out, err = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, (err or "")[-2000:]
        assert "Traceback" not in (err or "")


def wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def creates_at(sandbox: SandboxServer) -> list[float]:
    return sorted(r["at"] for r in sandbox.state.request_log if r["endpoint"] == "createTask")


def most_in_a_window(times: list[float], window: float) -> int:
    best, start = 0, 0
    for end, at in enumerate(times):
        while at - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def assert_each_row_created_once(sandbox: SandboxServer, ledger: Ledger) -> None:
    made = Counter(task.input.get("prompt") for task in sandbox.state.tasks.values())
    assert made and max(made.values()) == 1, "a row was created twice"
    sent = [j for j in ledger.jobs() if j["state"] not in (PENDING, ABANDONED)]
    assert len(sandbox.state.tasks) == len(sent)
    assert {j["task_id"] for j in sent} <= set(sandbox.state.tasks)


@pytest.mark.parametrize("sandbox", [LIMITED], indirect=True)
@pytest.mark.parametrize(("workers", "batches"), [(2, 1), (3, 2)])
def test_workers_finish_every_row_once_at_one_account_pace(
    sandbox: SandboxServer, store_url: str, tmp_path: Path, workers: int, batches: int
) -> None:
    env = run_env(sandbox, store_url, tmp_path)
    ledger = Ledger(store_url)
    # The workers wait for work first, as they would in production; then the batches arrive. At 20x real
    # speed the pace's 3 % margin is 15 ms, less than the scheduling jitter between processes on a busy
    # 2-core machine, so the workers are given 16 per window: three of them unshared would send 48.
    procs = [start_worker(env, "--rate", f"16/{10 * SCALE:g}") for _ in range(workers)]
    wait_for(lambda: len(ledger.workers()) == workers, 60, "every worker's first heartbeat")
    per_batch = 120 // batches
    for b in range(batches):
        items = [{**row, "prompt": f"b{b}-{row['prompt']}"} for row in rows(per_batch)]
        submit(env, write(tmp_path / f"batch{b}.jsonl", items), tmp_path / f"out{b}")
    wait_for(lambda: ledger.counts().get(DONE) == 120, 240, "every row done")
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        _out, err = proc.communicate(timeout=60)
        assert proc.returncode == 130 and "Traceback" not in err, err[-2000:]

    assert Counter(j["state"] for j in ledger.jobs()) == {DONE: 120}
    assert_each_row_created_once(sandbox, ledger)
    assert_every_file_whole_and_its_own(ledger)
    fetched = Counter(r.get("path") for r in sandbox.state.request_log if r["endpoint"] == "file")
    assert max(fetched.values()) == 1, "a result was downloaded twice"
    # One account limit across all the workers, counted where Kie would count it.
    assert most_in_a_window(creates_at(sandbox), sandbox.config.scaled(10.0)) <= 20
    assert sandbox.state.requests_for("createTask:429") == 0
    submitters = {
        e["detail"]["owner"]
        for j in ledger.jobs()
        for e in ledger.events_of(j["id"])
        if e["to_state"] == "submitting"
    }
    assert len(submitters) >= 2, "the work was not shared between the workers"
    with ledger.engine.connect() as c:
        savers = set(c.execute(files.select().with_only_columns(files.c.saved_by)).scalars())
    assert None not in savers and savers <= {w["id"] for w in ledger.workers()}
    assert all(w["state"] == "stopped" for w in ledger.workers())


@pytest.mark.parametrize("sandbox", [{"time_scale": 0.2, "status_rate_limit": None}], indirect=True)
def test_a_killed_workers_running_tasks_are_finished_and_saved_by_another(
    sandbox: SandboxServer, store_url: str, tmp_path: Path
) -> None:
    env = run_env(sandbox, store_url, tmp_path)
    ledger = Ledger(store_url)
    submit(env, write(tmp_path / "b.jsonl", rows(12)), tmp_path / "out")
    first = start_worker(env, "--rate", "20/2")
    wait_for(lambda: len([j for j in ledger.jobs() if j["state"] == RUNNING]) >= 4, 60, "running tasks")
    first.send_signal(signal.SIGKILL)
    first.wait()
    held = {j["id"] for j in ledger.jobs() if j["state"] == RUNNING}
    assert held and all(ledger.job(i)["poll_owner"] for i in held)  # type: ignore[index]

    second = start_worker(env, "--until-idle", "--rate", "20/2")
    finish([second])
    states = Counter(j["state"] for j in ledger.jobs())
    assert states[DONE] >= 11 and states[DONE] + states.get("unknown", 0) == 12, states
    assert_each_row_created_once(sandbox, ledger)
    assert_every_file_whole_and_its_own(ledger)
    for job_id in held:  # the dead worker's paid tasks were polled and saved by the survivor
        assert ledger.job(job_id)["state"] == DONE  # type: ignore[index]


@pytest.mark.parametrize("sandbox", [{"time_scale": 0.2, "status_rate_limit": None}], indirect=True)
def test_sigterm_drains_and_hands_the_running_tasks_back(
    sandbox: SandboxServer, store_url: str, tmp_path: Path
) -> None:
    env = run_env(sandbox, store_url, tmp_path)
    ledger = Ledger(store_url)
    submit(env, write(tmp_path / "b.jsonl", rows(20)), tmp_path / "out")
    proc = subprocess.Popen(
        [KIE, "worker", "--rate", "20/2", "--drain-timeout", "0"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(lambda: any(j["state"] == RUNNING for j in ledger.jobs()), 60, "a running task")
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert "draining" in err
    left = [j for j in ledger.jobs() if j["state"] == RUNNING]
    assert all(j["poll_owner"] is None for j in left), "a drained worker kept its leases"
    assert not any(j["state"] == "submitting" for j in ledger.jobs())
    assert ledger.workers()[0]["state"] == "stopped"

    finish([start_worker(env, "--until-idle", "--rate", "20/2")])
    assert Counter(j["state"] for j in ledger.jobs()) == {DONE: 20}
    assert_each_row_created_once(sandbox, ledger)


@pytest.mark.parametrize("sandbox", [LIMITED], indirect=True)
def test_priority_pause_resume_and_cancel_from_any_process(
    sandbox: SandboxServer, store_url: str, tmp_path: Path
) -> None:
    env = run_env(sandbox, store_url, tmp_path)
    ledger = Ledger(store_url)
    low = submit(env, write(tmp_path / "low.jsonl", rows(8)), tmp_path / "low")["batch"]
    high_rows = [{**r, "prompt": f"hi-{r['prompt']}"} for r in rows(8)]
    high = submit(env, write(tmp_path / "high.jsonl", high_rows), tmp_path / "high", "--priority", "5")[
        "batch"
    ]
    paused_rows = [{**r, "prompt": f"pa-{r['prompt']}"} for r in rows(5)]
    paused = submit(env, write(tmp_path / "paused.jsonl", paused_rows), tmp_path / "paused")["batch"]
    gone_rows = [{**r, "prompt": f"ca-{r['prompt']}"} for r in rows(5)]
    gone = submit(env, write(tmp_path / "gone.jsonl", gone_rows), tmp_path / "gone")["batch"]
    for command in (["pause", paused], ["cancel", gone]):
        done = subprocess.run([KIE, "batch", *command, "--json"], env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr

    finish([start_worker(env, "--until-idle")])
    by_batch = {b: Counter(j["state"] for j in ledger.jobs(batch_id=b)) for b in (low, high, paused, gone)}
    assert by_batch[low] == {DONE: 8} and by_batch[high] == {DONE: 8}
    assert by_batch[paused] == {PENDING: 5}
    assert by_batch[gone] == {ABANDONED: 5}
    first_low = min(j["submitted_at"] for j in ledger.jobs(batch_id=low))
    assert max(j["submitted_at"] for j in ledger.jobs(batch_id=high)) <= first_low, "priority ignored"

    resumed = subprocess.run(
        [KIE, "batch", "resume", paused, "--queue"], env=env, capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr
    finish([start_worker(env, "--until-idle")])
    assert Counter(j["state"] for j in ledger.jobs(batch_id=paused)) == {DONE: 5}
    assert_each_row_created_once(sandbox, ledger)


SKEW = """
import time as _time
_real = _time.time
_time.time = lambda: _real() + {skew}
"""


@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)
@pytest.mark.parametrize("sandbox", [{"time_scale": 0.2, "status_rate_limit": None}], indirect=True)
def test_a_worker_whose_clock_is_minutes_off_changes_nothing(
    sandbox: SandboxServer, store_url: str, tmp_path: Path
) -> None:
    url = store_url
    env = run_env(sandbox, url, tmp_path)
    ledger = Ledger(url)
    submit(env, write(tmp_path / "b.jsonl", rows(16)), tmp_path / "out")
    ahead = tmp_path / "ahead"
    ahead.mkdir()
    (ahead / "sitecustomize.py").write_text(SKEW.format(skew=600.0))
    skewed = {**env, "PYTHONPATH": os.pathsep.join([str(ahead), env.get("PYTHONPATH", "")])}
    procs = [
        start_worker(skewed, "--until-idle", "--rate", "20/2"),
        start_worker(env, "--until-idle", "--rate", "20/2"),
    ]
    finish(procs)
    assert Counter(j["state"] for j in ledger.jobs()) == {DONE: 16}, "a lease was misjudged"
    assert_each_row_created_once(sandbox, ledger)
    now = ledger.now()
    beats = [w["heartbeat_at"] for w in ledger.workers()]
    assert len(beats) == 2 and all(abs(now - at) < 120 for at in beats), "a timestamp came off a skewed clock"
    starts = sorted(j["submitted_at"] for j in ledger.jobs())
    assert starts[-1] - starts[0] < 120, "submission times disagree by the skew"


# -- a PostgreSQL restart mid-run --------------------------------------------------------------------
PG_BIN = (
    next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"))), None)
    if Path("/usr/lib/postgresql").is_dir()
    else None
)


class PrivatePostgres:
    """A PostgreSQL server of the test's own, on a free port, so the test may restart it; run as the
    `postgres` user when the tests run as root (the server refuses root)."""

    def __init__(self, folder: Path, port: int) -> None:
        assert PG_BIN is not None
        self.folder, self.port = folder, port
        folder.mkdir(mode=0o700)
        self._as_owner(["chown", "-R", "postgres", str(folder)], root_only=True)
        self._run([str(PG_BIN / "initdb"), "-D", str(folder / "data"), "-A", "trust", "-U", "postgres"])
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"

    def _as_owner(self, command: list[str], *, root_only: bool = False) -> list[str]:
        if os.geteuid() != 0:
            return command
        if root_only:
            subprocess.run(command, check=True, capture_output=True)
            return command
        return ["su", "postgres", "-s", "/bin/sh", "-c", " ".join(command)]

    def _run(self, command: list[str]) -> None:
        done = subprocess.run(self._as_owner(command), capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]

    def ctl(self, action: str) -> None:
        options = f"'-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1'"
        log = self.folder / "log"
        self._run(
            [
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(self.folder / "data"),
                "-l",
                str(log),
                "-w",
                "-o",
                options,
                action,
            ]
        )


@pytest.mark.skipif(
    PG_BIN is None, reason="restarting PostgreSQL needs its server binaries (/usr/lib/postgresql)"
)
@pytest.mark.parametrize("sandbox", [{"time_scale": 0.2, "status_rate_limit": None}], indirect=True)
def test_a_postgres_restart_mid_run_loses_nothing_and_the_workers_carry_on(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    from tests.conftest import require_postgres

    require_postgres()  # a machine without PostgreSQL skips this with the others
    from kie.sandbox.server import free_socket

    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    import shutil
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="kie-pg-"))  # outside pytest's root-only folder
    base.chmod(0o755)
    server = PrivatePostgres(base / "pg", port)
    server.ctl("start")
    try:
        env = run_env(sandbox, server.url, tmp_path) | {"PYTHONFAULTHANDLER": "1"}
        ledger = Ledger(server.url)
        submit(env, write(tmp_path / "b.jsonl", rows(30)), tmp_path / "out")
        logs = [tmp_path / f"worker{n}.log" for n in range(2)]
        procs = [start_worker(env, "--until-idle", "--rate", "20/4", log=log) for log in logs]
        wait_for(lambda: ledger.counts().get(DONE, 0) >= 5, 60, "the first results")
        server.ctl("restart")
        for proc, log in zip(procs, logs, strict=True):
            try:
                code = proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGABRT)  # with PYTHONFAULTHANDLER: every thread's stack to the log
                proc.wait(timeout=30)
                code = None
            assert code == 0, log.read_text()[-3000:]
        assert Counter(j["state"] for j in ledger.jobs()) == {DONE: 30}
        assert_each_row_created_once(sandbox, ledger)
        assert_every_file_whole_and_its_own(ledger)
        ledger.close()
    finally:
        server.ctl("stop")
        shutil.rmtree(base, ignore_errors=True)
