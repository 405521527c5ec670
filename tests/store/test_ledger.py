"""The ledger's guarantees, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, text

import kie.store.ledger
from kie.store import DONE, FAILED, PENDING, RUNNING, SUBMITTING, SUCCEEDED, UNKNOWN, Ledger, NewJob


def job(row: str, prompt: str = "p", credits: float = 5.0) -> NewJob:
    return NewJob("nano-banana-pro", {"prompt": prompt}, row_key=row, row_line=1, estimated_credits=credits)


@pytest.fixture
def ledger(store_url: str) -> Ledger:
    ledger = Ledger(store_url)
    ledger.ensure_batch("b", source="file.jsonl", output_dir="out", options={"max_credits": 10})
    return ledger


def test_rows_are_inserted_once_per_key(ledger: Ledger) -> None:
    first = ledger.add_jobs("b", [job("r1"), job("r2")])
    again = ledger.add_jobs("b", [job("r1", prompt="changed"), job("r3")])
    assert again[0] == first[0] and again[1] not in first
    assert ledger.counts("b") == {PENDING: 3}


def test_migrations_are_idempotent(store_url: str) -> None:
    Ledger(store_url).add_jobs(None, [job("x")])
    assert Ledger(store_url).counts() == {PENDING: 1}


def test_claim_is_a_compare_and_set(ledger: Ledger, store_url: str) -> None:
    (job_id,) = ledger.add_jobs("b", [job("r1")])
    other = Ledger(store_url)  # a second worker on the same store
    claimed = ledger.claim_for_submit(job_id, 60)
    assert claimed is not None and claimed["state"] == SUBMITTING
    assert other.claim_for_submit(job_id, 60) is None  # never two senders
    assert not other.mark_running({**claimed, "claim_seq": claimed["claim_seq"] - 1}, "t-stale")  # type: ignore[arg-type]
    assert ledger.mark_running(claimed, "t1")
    row = ledger.job(job_id)
    assert row is not None and row["state"] == RUNNING and row["task_id"] == "t1"
    history = [(e["from_state"], e["to_state"]) for e in ledger.events_of(job_id)]
    assert history == [(None, PENDING), (PENDING, SUBMITTING), (SUBMITTING, RUNNING)]


def test_definitive_refusal_releases_and_crash_makes_unknown(ledger: Ledger) -> None:
    a, b = ledger.add_jobs("b", [job("a"), job("b")])
    claimed_a = ledger.claim_for_submit(a, 60)
    assert claimed_a is not None and ledger.release(claimed_a, "429")
    assert ledger.job(a)["state"] == PENDING  # type: ignore[index]
    ledger.claim_for_submit(b, lease_seconds=-1)  # a lease that already ran out: the worker died
    assert ledger.expire_leases("b") == 1
    assert ledger.job(b)["state"] == UNKNOWN  # type: ignore[index]


def test_a_dead_local_worker_is_detected_before_its_lease_ends(ledger: Ledger, store_url: str) -> None:
    (job_id,) = ledger.add_jobs("b", [job("r")])
    code = (
        "import sys; from kie.store import Ledger; "
        f"l = Ledger({store_url!r}); l.claim_for_submit({job_id!r}, 3600); sys.exit(0)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env=os.environ.copy())
    assert ledger.job(job_id)["state"] == SUBMITTING  # type: ignore[index]
    assert ledger.expire_leases("b") == 1 and ledger.job(job_id)["state"] == UNKNOWN  # type: ignore[index]


def test_spend_counts_finished_and_in_flight(ledger: Ledger) -> None:
    a, b, _c = ledger.add_jobs("b", [job("a", credits=4), job("b", credits=6), job("c", credits=100)])
    claimed = ledger.claim_for_submit(a, 60)
    assert claimed is not None and ledger.mark_running(claimed, "ta")
    ledger.transition(a, RUNNING, "succeeded", actual_credits=3.5)
    ledger.claim_for_submit(b, 60)
    assert ledger.spend("b") == (3.5, 6.0)


def test_shared_limiter_paces_across_workers(ledger: Ledger, store_url: str) -> None:
    other = Ledger(store_url)
    waits = [
        ledger.reserve_slot("acct", 0.5),
        other.reserve_slot("acct", 0.5),
        ledger.reserve_slot("acct", 0.5),
    ]
    assert waits[0] == 0.0
    assert waits[1] == pytest.approx(0.5, abs=0.05) and waits[2] == pytest.approx(1.0, abs=0.05)
    time.sleep(0.01)


def test_find_by_prefix_or_task_id(ledger: Ledger) -> None:
    (job_id,) = ledger.add_jobs("b", [job("r")])
    claimed = ledger.claim_for_submit(job_id, 60)
    assert claimed is not None and ledger.mark_running(claimed, "task-xyz")
    assert ledger.find(job_id[:8])["id"] == job_id  # type: ignore[index]
    assert ledger.find("task-xyz")["id"] == job_id  # type: ignore[index]
    assert ledger.find("nope") is None


def test_ready_ids_holds_back_steps_until_their_parent_is_done(ledger: Ledger) -> None:
    first, second, other = ledger.add_jobs(
        "b", [job("r1"), NewJob("recraft/crisp-upscale", {}, row_key="r1", step=1), job("r2")]
    )
    assert set(ledger.ready_ids("b")) == {first, other}
    claimed = ledger.claim_for_submit(first, 60)
    assert claimed is not None and ledger.mark_running(claimed, "t-1")
    assert ledger.transition(first, RUNNING, SUCCEEDED) and ledger.ready_ids("b") == [other]
    assert ledger.transition(first, SUCCEEDED, DONE)
    assert set(ledger.ready_ids("b")) == {second, other}


def test_left_running_reports_each_settled_job_once(ledger: Ledger) -> None:
    a, b = ledger.add_jobs("b", [job("a"), job("b")])
    for job_id, task in ((a, "t-a"), (b, "t-b")):
        claimed = ledger.claim_for_submit(job_id, 60)
        assert claimed is not None and ledger.mark_running(claimed, task)
    cursor = ledger.last_event_id()
    assert ledger.left_running("b", cursor) == (cursor, [])
    ledger.transition(a, RUNNING, RUNNING, {"progress": 0.5})  # still running: not reported
    ledger.transition(a, RUNNING, SUCCEEDED)
    cursor, left = ledger.left_running("b", cursor)
    assert left == [a]
    ledger.transition(b, RUNNING, FAILED)
    assert ledger.left_running("b", cursor)[1] == [b]


def test_iter_jobs_pages_through_a_batch_with_its_files(ledger: Ledger) -> None:
    ids = ledger.add_jobs("b", [job(f"r{n}") for n in range(5)])
    ledger.record_files(
        ids[3], [{"url": "u", "path": "p.png", "size": 3, "sha256": "ab", "content_type": None}]
    )
    seen = {j["id"]: files for j, files in ledger.iter_jobs(batch_id="b", page=2)}
    assert sorted(seen) == sorted(ids)  # every job once, across three pages
    assert [len(seen[i]) for i in ids] == [0, 0, 0, 1, 0] and seen[ids[3]][0]["path"] == "p.png"
    assert list(ledger.iter_jobs(batch_id="b", states=[DONE])) == []


def test_a_ledger_from_the_first_release_is_upgraded_in_place(store_url: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(Path(kie.store.ledger.__file__).parent / "migrations"))
    engine = create_engine(store_url)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
        connection.execute(
            text(
                "INSERT INTO kie_batches (id, source, output_dir, options, created_at) "
                "VALUES ('old', 'f.jsonl', 'out', '{}', 0)"
            )
        )
    engine.dispose()
    ledger = Ledger(store_url)  # opening migrates to the newest revision, keeping the rows
    old = ledger.batch("old")
    assert old is not None and old["source"] == "f.jsonl" and old["balance_start"] is None
    ledger.record_balance("old", 100.0)
    ledger.record_balance("old", 80.5)
    old = ledger.batch("old")
    assert old is not None and (old["balance_start"], old["balance_end"]) == (100.0, 80.5)
