"""The batch engine on SQLite and PostgreSQL: resume, 402, budget, unknowns, pipelines."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import Counter
from pathlib import Path

import pytest

from kie.client import AsyncKie
from kie.runner.engine import BatchRunner, RunOptions, RunResult
from kie.runner.plan import plan_batch
from kie.sandbox.server import SandboxServer
from kie.store import DONE, PENDING, UNKNOWN, Ledger
from tests.conftest import FAST_RETRY, client_settings, poll_policy

MODEL = "bytedance/seedream-v4-text-to-image"  # 5 credits per image in the catalogue


def write_batch(path: Path, rows: int, **extra: object) -> Path:
    path.write_text(
        "\n".join(
            json.dumps({"id": f"r{n}", "model": MODEL, "prompt": f"poster {n}", **extra}) for n in range(rows)
        )
    )
    return path


def run_batch(
    sandbox: SandboxServer,
    ledger: Ledger,
    batch: Path,
    out: Path,
    *,
    stop_after: int | None = None,
    **options: object,
) -> RunResult:
    plan = plan_batch(batch)
    assert not plan.errors, plan.errors
    ledger.ensure_batch("b", source=str(batch), output_dir=str(out), options={})
    ledger.add_jobs("b", plan.jobs)

    async def main() -> RunResult:
        async with AsyncKie(
            settings=client_settings(sandbox), poll=poll_policy(), retry=FAST_RETRY, create_interval=None
        ) as client:
            runner = BatchRunner(
                ledger, client, "b", RunOptions(output_dir=out, create_interval=0.0, **options)
            )  # type: ignore[arg-type]
            if stop_after is not None:
                claims = 0

                def on_event(kind: str, data: object) -> None:
                    nonlocal claims
                    claims += kind == "submitting"
                    if claims >= stop_after:
                        runner.stop_submitting("test stop")

                runner.on_event = on_event
            return await runner.run()

    return asyncio.run(main())


def tasks_per_prompt(sandbox: SandboxServer) -> Counter[str]:
    return Counter(str(t.input.get("prompt")) for t in sandbox.state.tasks.values())


def assert_manifest_matches(ledger: Ledger, out: Path) -> None:
    manifest = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    done = {j["id"]: j for j in ledger.jobs(batch_id="b", states=[DONE])}
    assert {m["job"] for m in manifest if m["state"] == DONE} == set(done)
    for entry in manifest:
        for saved in entry["files"]:
            assert hashlib.sha256(Path(saved["path"]).read_bytes()).hexdigest() == saved["sha256"]


def test_a_batch_runs_and_a_rerun_pays_for_nothing(
    sandbox: SandboxServer, store_url: str, tmp_path: Path
) -> None:
    ledger, out = Ledger(store_url), tmp_path / "out"
    batch = write_batch(tmp_path / "b.jsonl", 12)
    first = run_batch(sandbox, ledger, batch, out)
    assert first.counts == {DONE: 12} and first.spent == 60
    assert first.balance_spent == 60  # the account's own balance agrees with the ledger
    second = run_batch(sandbox, ledger, batch, out)
    assert second.counts == {DONE: 12} and second.balance_spent == 60  # measured from the first start
    assert len(sandbox.state.tasks) == 12 and max(tasks_per_prompt(sandbox).values()) == 1
    assert_manifest_matches(ledger, out)


def test_interrupted_batch_resumes_without_duplicates(
    sandbox: SandboxServer, store_url: str, tmp_path: Path
) -> None:
    ledger, out = Ledger(store_url), tmp_path / "out"
    batch = write_batch(tmp_path / "b.jsonl", 10)
    partial = run_batch(sandbox, ledger, batch, out, stop_after=4)
    assert partial.stopped_reason == "test stop" and partial.counts.get(PENDING, 0) > 0
    finished = run_batch(sandbox, ledger, batch, out)
    assert finished.counts == {DONE: 10}
    assert sorted(tasks_per_prompt(sandbox).values()) == [1] * 10
    assert_manifest_matches(ledger, out)


@pytest.mark.parametrize("sandbox", [{"credits": 22.0}], indirect=True)
def test_402_pauses_submitting_and_resume_after_top_up(
    sandbox: SandboxServer, store_url: str, tmp_path: Path
) -> None:
    ledger, out = Ledger(store_url), tmp_path / "out"
    batch = write_batch(tmp_path / "b.jsonl", 8)
    paused = run_batch(sandbox, ledger, batch, out)
    assert paused.stopped_reason is not None and "insufficient credits" in paused.stopped_reason
    assert paused.counts[DONE] == 4 and paused.counts[PENDING] == 4  # running ones finished and downloaded
    assert ledger.batch("b")["paused_reason"] == paused.stopped_reason  # type: ignore[index]
    with sandbox.state.lock:
        sandbox.state.balance = 1000.0
    resumed = run_batch(sandbox, ledger, batch, out)
    assert resumed.counts == {DONE: 8} and resumed.stopped_reason is None
    assert sorted(tasks_per_prompt(sandbox).values()) == [1] * 8


def test_max_credits_stops_before_the_cap(sandbox: SandboxServer, store_url: str, tmp_path: Path) -> None:
    ledger, out = Ledger(store_url), tmp_path / "out"
    batch = write_batch(tmp_path / "b.jsonl", 10)
    result = run_batch(sandbox, ledger, batch, out, max_credits=23)
    assert result.stopped_reason == "budget"
    assert result.counts[DONE] == 4 and result.spent == 20 and result.spent + result.in_flight <= 23
    assert len(sandbox.state.tasks) == 4


def test_lost_create_becomes_unknown_and_is_never_resent(
    sandbox: SandboxServer, store_url: str, tmp_path: Path
) -> None:
    ledger, out = Ledger(store_url), tmp_path / "out"
    batch = write_batch(tmp_path / "b.jsonl", 5)
    sandbox.state.inject("createTask", "drop_after_create")
    first = run_batch(sandbox, ledger, batch, out)
    assert first.counts == {DONE: 4, UNKNOWN: 1}
    run_batch(sandbox, ledger, batch, out)
    assert len(sandbox.state.tasks) == 5 and max(tasks_per_prompt(sandbox).values()) == 1
    assert ledger.counts("b") == {DONE: 4, UNKNOWN: 1}


def test_pipeline_steps_chain_results(sandbox: SandboxServer, store_url: str, tmp_path: Path) -> None:
    ledger, out = Ledger(store_url), tmp_path / "out"
    batch = tmp_path / "p.jsonl"
    batch.write_text(
        json.dumps(
            {
                "id": "cat",
                "model": MODEL,
                "prompt": "a cat",
                "then": [{"model": "recraft/crisp-upscale"}, {"model": "recraft/remove-background"}],
            }
        )
    )
    plan = plan_batch(batch)
    assert [j.estimated_credits for j in plan.jobs] == [5, 0.5, 1]  # the whole chain is priced
    result = run_batch(sandbox, ledger, batch, out)
    assert result.counts == {DONE: 3}
    steps = sorted(ledger.jobs(batch_id="b"), key=lambda j: j["step"])
    upscale_input = sandbox.state.tasks[steps[1]["task_id"]].input["image"]
    assert upscale_input == steps[0]["result_urls"][0]
    assert sandbox.state.tasks[steps[2]["task_id"]].input["image"] == steps[1]["result_urls"][0]
    assert steps[2]["parent_job_id"] == steps[1]["id"]


def test_failed_generation_is_recorded(sandbox: SandboxServer, store_url: str, tmp_path: Path) -> None:
    ledger, out = Ledger(store_url), tmp_path / "out"
    sandbox.state.inject("generation", "fail_generation", fail_code="400", fail_msg="flagged")
    result = run_batch(sandbox, ledger, write_batch(tmp_path / "b.jsonl", 3), out)
    assert result.counts == {DONE: 2, "failed": 1}
    failed = ledger.jobs(batch_id="b", states=["failed"])[0]
    assert failed["error_code"] == "400" and failed["error_message"] == "flagged"
