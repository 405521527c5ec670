"""Never lose a paid result off the straight path: webhooks with pipelines, colliding names, several
processes on one batch, a receiver killed mid-run, crashes while creates wait for departure."""

from __future__ import annotations

import asyncio
import hashlib
import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from kie.client import AsyncKie
from kie.runner.engine import BatchRunner, RunOptions, RunResult
from kie.runner.plan import plan_batch
from kie.sandbox.server import SandboxServer, free_socket
from kie.store import DONE, PENDING, RUNNING, SUBMITTING, UNKNOWN, Ledger
from kie.webhooks import Receiver
from tests.conftest import FAST_RETRY, client_settings, poll_policy
from tests.receiver import Served
from tests.runner.test_crash import run_env

KIE = str(Path(sys.executable).parent / "kie")
KEY = "whk-no-loss"
SCALE = 0.02
HOOKED = {"webhook_key": KEY, "time_scale": SCALE, "rate_limit": None, "status_rate_limit": None}
PIPELINE = [{"model": "recraft/crisp-upscale"}]


def rows(n: int, **extra: Any) -> list[dict[str, Any]]:
    return [
        {"id": f"r{i}", "model": "z-image", "prompt": f"p{i}", "aspect_ratio": "1:1", **extra}
        for i in range(n)
    ]


def write(path: Path, items: list[dict[str, Any]]) -> Path:
    path.write_text("\n".join(json.dumps(i) for i in items) + "\n")
    return path


def plan_into(ledger: Ledger, batch: Path, out: Path, batch_id: str = "b", **options: Any) -> None:
    plan = plan_batch(batch)
    assert not plan.errors, plan.errors
    ledger.add_batch(batch_id, source=str(batch), output_dir=str(out), options=options, jobs=plan.jobs)


def run(sandbox: SandboxServer, ledger: Ledger, out: Path, **options: Any) -> RunResult:
    async def main() -> RunResult:
        async with AsyncKie(
            settings=client_settings(sandbox),
            poll=poll_policy(sandbox.config.time_scale),
            retry=FAST_RETRY,
            create_interval=None,
        ) as client:
            return await BatchRunner(
                ledger, client, "b", RunOptions(output_dir=out, create_interval=0.0, **options)
            ).run()

    return asyncio.run(main())


def assert_every_file_whole_and_its_own(ledger: Ledger) -> list[dict[str, Any]]:
    """Each job's files exist with the recorded sha256, and no two jobs share a path."""
    owners: dict[str, str] = {}
    saved = []
    for job in ledger.jobs():
        for f in ledger.files_of(job["id"]):
            assert f["path"] not in owners, f"{f['path']} belongs to {owners[f['path']]} and {job['id']}"
            owners[f["path"]] = job["id"]
            assert hashlib.sha256(Path(f["path"]).read_bytes()).hexdigest() == f["sha256"]
            saved.append(dict(f))
    return saved


# -- webhooks with pipelines ---------------------------------------------------------------------------


@pytest.mark.parametrize("sandbox", [HOOKED], indirect=True)
def test_webhook_mode_pipelines_save_every_step_under_its_own_name(
    sandbox: SandboxServer, store_url: str, tmp_path: Path
) -> None:
    ledger = Ledger(store_url)
    out = tmp_path / "out"
    plan_into(ledger, write(tmp_path / "b.jsonl", rows(6, then=PIPELINE)), out)
    settings = client_settings(sandbox)
    receiver = Receiver(
        ledger=ledger,
        settings=settings,
        output_dir=tmp_path / "receiver-default",
        key=KEY,
        client_factory=lambda: AsyncKie(settings=settings, poll=poll_policy(SCALE), create_interval=None),
    )
    started = time.monotonic()
    with Served(receiver) as served:
        result = run(sandbox, ledger, out, webhook_base=served.url)
    assert result.counts == {DONE: 12}, result.counts
    saved = assert_every_file_whole_and_its_own(ledger)
    names = sorted(Path(f["path"]).name for f in saved)
    assert names == sorted([f"r{i}-1.png" for i in range(6)] + [f"r{i}-s1-1.png" for i in range(6)])
    assert all(Path(f["path"]).parent == out for f in saved)  # the batch's folder, not the receiver's
    # Each step was fed its parent's result, so Kie saw the upscale inputs as URLs of step 0.
    upscales = [t for t in sandbox.state.tasks.values() if t.model == "recraft/crisp-upscale"]
    assert len(upscales) == 6 and all(str(t.input["image"]).startswith("http") for t in upscales)
    assert served.receiver.accepted >= 6
    print(f"webhook pipeline run took {time.monotonic() - started:.2f}s")


def free_port() -> int:
    with free_socket() as sock:
        return int(sock.getsockname()[1])


def kie_env(sandbox: SandboxServer, store_url: str, tmp_path: Path) -> dict[str, str]:
    """The crash test's environment, plus the webhook key `kie serve` checks signatures with."""
    return run_env(sandbox, store_url, tmp_path) | {"KIE_WEBHOOK_KEY": KEY}


def start_serve(port: int, env: dict[str, str], out: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [KIE, "serve", "--port", str(port), "-o", str(out), "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    json.loads(proc.stdout.readline())  # printed once it is about to listen
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.post(f"http://127.0.0.1:{port}/kie/callback/none", content=b"{}", timeout=1)
            return proc
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError("kie serve did not start listening")


@pytest.mark.parametrize("sandbox", [HOOKED], indirect=True)
def test_kie_serve_killed_and_restarted_mid_run_loses_nothing(
    sandbox: SandboxServer, store_url: str, tmp_path: Path
) -> None:
    env = kie_env(sandbox, store_url, tmp_path)
    out = tmp_path / "out"
    batch = write(tmp_path / "b.jsonl", rows(16, then=PIPELINE))
    port = free_port()
    serve = start_serve(port, env, tmp_path / "serve-out")
    run_cmd = [
        KIE,
        "batch",
        "run",
        str(batch),
        "-o",
        str(out),
        "--rate",
        "40/1",
        "--public-url",
        f"http://127.0.0.1:{port}",
        "--json",
    ]
    batch_proc = subprocess.Popen(run_cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert batch_proc.stdout is not None
    done_seen = 0
    for line in batch_proc.stdout:
        if line.startswith('{"') and json.loads(line).get("event") == "done":
            done_seen += 1
            if done_seen == 4:
                break
    serve.send_signal(signal.SIGKILL)
    serve.wait()
    time.sleep(0.3)  # callbacks fail meanwhile; Kie retries them on its schedule
    serve = start_serve(port, env, tmp_path / "serve-out")
    try:
        batch_proc.communicate(timeout=240)
        assert batch_proc.returncode == 0
        ledger = Ledger(store_url)
        (b,) = {j["batch_id"] for j in ledger.jobs()}
        resumed = subprocess.run(
            [KIE, "batch", "resume", str(b), "--json"], env=env, capture_output=True, text=True, timeout=240
        )
        assert resumed.returncode == 0, resumed.stderr
    finally:
        serve.send_signal(signal.SIGINT)
        serve.communicate(timeout=20)
    states = Counter(j["state"] for j in ledger.jobs())
    assert states == {DONE: 32}, states
    saved = assert_every_file_whole_and_its_own(ledger)
    assert len(saved) == 32 and all(Path(f["path"]).parent == out for f in saved)
    created = Counter(
        (t.model, str(t.input.get("prompt") or t.input.get("image"))) for t in sandbox.state.tasks.values()
    )
    assert max(created.values()) == 1, "a step was paid for twice"
    # Jobs created after the restart got callback URLs too: every task carries one.
    assert all(t.callback_url and "/kie/callback/" in t.callback_url for t in sandbox.state.tasks.values())


# -- names -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sandbox", [{"rate_limit": None}], indirect=True)
def test_rows_with_colliding_names_all_keep_their_files(
    sandbox: SandboxServer, store_url: str, tmp_path: Path
) -> None:
    ledger = Ledger(store_url)
    out = tmp_path / "out"
    long = "x" * 130
    items = [
        {"id": "one", "model": "z-image", "prompt": "a", "output": "same"},
        {"id": "two", "model": "z-image", "prompt": "b", "output": "same"},
        {"id": "a/b", "model": "z-image", "prompt": "c"},
        {"id": "a_b", "model": "z-image", "prompt": "d"},
        {"id": "a b", "model": "z-image", "prompt": "e"},
        {"id": long + "1", "model": "z-image", "prompt": "f"},
        {"id": long + "2", "model": "z-image", "prompt": "g"},
        {"id": "x", "model": "z-image", "prompt": "h", "then": PIPELINE},
        {"id": "x-s1", "model": "z-image", "prompt": "i"},
    ]
    plan_into(ledger, write(tmp_path / "b.jsonl", items), out)
    (out / "one-1.png").parent.mkdir(parents=True, exist_ok=True)
    (out / "same-1.png").write_bytes(b"a file of the user's that is not in the ledger")
    result = run(sandbox, ledger, out)
    assert result.counts == {DONE: 10}, result.counts
    saved = assert_every_file_whole_and_its_own(ledger)
    assert len(saved) == 10
    assert (out / "same-1.png").read_bytes() == b"a file of the user's that is not in the ledger"
    # Running the batch again is a resume: it pays for nothing and rewrites nothing.
    before = {f["path"]: f["sha256"] for f in saved}
    again = run(sandbox, ledger, out)
    assert again.counts == {DONE: 10} and len(sandbox.state.tasks) == 10
    assert {f["path"]: f["sha256"] for f in assert_every_file_whole_and_its_own(ledger)} == before


# -- several processes on one batch --------------------------------------------------------------


@pytest.mark.parametrize(
    "sandbox", [{"rate_limit": None, "status_rate_limit": None, "time_scale": 0.004}], indirect=True
)
def test_three_resume_processes_finish_one_batch_with_no_duplicate_download(
    sandbox: SandboxServer, store_url: str, tmp_path: Path
) -> None:
    ledger = Ledger(store_url)
    out = tmp_path / "out"
    plan_into(ledger, write(tmp_path / "b.jsonl", rows(30)), out, batch_id="b", rate="200/1")
    env = {k: v for k, v in kie_env(sandbox, store_url, tmp_path).items() if k != "KIE_WEBHOOK_KEY"}
    procs = [
        subprocess.Popen(
            [KIE, "batch", "resume", "b", "--json"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    results = [p.communicate(timeout=240) for p in procs]
    for proc, (_out, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err[-2000:]
        assert "Traceback" not in err
    states = Counter(j["state"] for j in ledger.jobs())
    assert states == {DONE: 30}, states
    assert len(sandbox.state.tasks) == 30
    saved = assert_every_file_whole_and_its_own(ledger)
    fetched = Counter(r.get("path") for r in sandbox.state.request_log if r["endpoint"] == "file")
    assert len(saved) == 30 and max(fetched.values()) == 1, "a result was downloaded twice"
    assert not list(out.glob(".*.part")) and not list(out.glob(".*.tmp"))
    manifest = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert sorted(m["job"] for m in manifest) == sorted(j["id"] for j in ledger.jobs())


# -- intent at departure -----------------------------------------------------------------------


@pytest.mark.parametrize("sandbox", [{"rate_limit": None}], indirect=True)
def test_a_crash_while_creates_wait_for_departure_leaves_them_pending(
    sandbox: SandboxServer, store_url: str, tmp_path: Path
) -> None:
    """Creates wait 0.3 s apart for departure; the run is cancelled mid-way, like a SIGKILL (nothing
    gets to clean up). Only a create actually in flight may be left `submitting`."""
    ledger = Ledger(store_url)
    out = tmp_path / "out"
    plan_into(ledger, write(tmp_path / "b.jsonl", rows(12)), out)

    async def main() -> None:
        async with AsyncKie(
            settings=client_settings(sandbox), poll=poll_policy(), retry=FAST_RETRY, create_interval=None
        ) as client:
            runner = BatchRunner(ledger, client, "b", RunOptions(output_dir=out, create_interval=0.3))
            submitted = asyncio.Event()

            def on_event(kind: str, data: object) -> None:
                if kind == "running" and sum(1 for j in ledger.jobs() if j["task_id"]) >= 3:
                    submitted.set()

            runner.on_event = on_event
            task = asyncio.create_task(runner.run())
            await asyncio.wait_for(submitted.wait(), 30)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(main())
    states = Counter(j["state"] for j in ledger.jobs())
    assert states[SUBMITTING] + states[UNKNOWN] <= 1, states
    assert states[PENDING] >= 6, states
    assert states[PENDING] + states[SUBMITTING] + states[UNKNOWN] + states[RUNNING] + states[DONE] == 12
