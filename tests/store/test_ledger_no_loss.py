"""Never losing a paid result when several processes share one ledger, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import create_engine, update

from kie.errors import KieError, ValidationError
from kie.store import DONE, PENDING, RUNNING, SUBMITTING, SUCCEEDED, UNKNOWN, Ledger, NewJob
from kie.store.schema import jobs


def job(row: str, step: int = 0) -> NewJob:
    return NewJob("nano-banana-pro", {"prompt": f"p {row}"}, row_key=row, row_line=1, step=step)


@pytest.fixture
def ledger(store_url: str) -> Iterator[Ledger]:
    ledger = Ledger(store_url)
    ledger.ensure_batch("b", source=None, output_dir="out", options={})
    yield ledger
    ledger.close()


def succeeded(ledger: Ledger, row: str) -> str:
    (job_id,) = ledger.add_jobs("b", [job(row)])
    claimed = ledger.claim_for_submit(job_id, 60)
    assert claimed is not None and ledger.mark_running(claimed, f"task-{row}")
    assert ledger.transition(job_id, RUNNING, SUCCEEDED)
    return job_id


# -- a batch and its jobs ----------------------------------------------------------------------------
def test_add_batch_writes_the_batch_and_its_jobs_together(ledger: Ledger) -> None:
    unstorable = NewJob("nano-banana-pro", {"prompt": "x", "blob": object()}, row_key="bad")
    with pytest.raises(Exception):  # noqa: B017 - whatever the driver raises, nothing may be left
        ledger.add_batch("new", source="f.csv", output_dir="out", options={}, jobs=[job("ok"), unstorable])
    assert ledger.batch("new") is None and ledger.counts() == {}

    first = ledger.add_batch("new", source="f.csv", output_dir="out", options={"n": 1}, jobs=[job("r1")])
    again = ledger.add_batch(
        "new", source="f.csv", output_dir="out2", options={"n": 2}, jobs=[job("r1"), job("r2")]
    )
    assert again[0] == first[0] and again[1] != first[0]
    batch = ledger.batch("new")
    assert batch is not None and batch["output_dir"] == "out2" and batch["options"] == {"n": 2}
    assert ledger.counts("new") == {PENDING: 2}


def test_bulk_insert_keeps_order_duplicates_parents_and_events_across_chunks(ledger: Ledger) -> None:
    rows = [job(f"r{n}") for n in range(1500)] + [job("r3", step=1), job("r7"), job("r1400", step=1)]
    ids = ledger.add_batch("b", source=None, output_dir=None, options={}, jobs=rows)
    assert len(ids) == 1503 and len(set(ids)) == 1502 and ids[1501] == ids[7]
    assert ledger.job(ids[1500])["parent_job_id"] == ids[3]  # type: ignore[index]
    assert ledger.job(ids[1502])["parent_job_id"] == ids[1400]  # type: ignore[index]
    assert ledger.add_jobs("b", rows) == ids  # a re-run adds nothing and finds every job
    assert ledger.counts("b") == {PENDING: 1502}
    assert [(e["from_state"], e["to_state"]) for e in ledger.events_of(ids[1400])] == [(None, PENDING)]
    assert ledger.events_of(ids[1400])[0]["detail"] == {"row": "r1400", "line": 1}
    later = ledger.add_jobs("b", [job("r9", step=1)])  # the parent is found in the table
    assert ledger.job(later[0])["parent_job_id"] == ids[9]  # type: ignore[index]


def test_chunked_insert_commits_each_chunk(ledger: Ledger) -> None:
    def plan() -> Iterator[NewJob]:
        for n in range(5):
            yield job(f"r{n}")
        raise RuntimeError("planning failed at row 6")

    with pytest.raises(RuntimeError):
        ledger.add_jobs_chunked("new", plan(), chunk=2, source="f.csv", options={"n": 1})
    batch = ledger.batch("new")
    assert batch is not None and batch["source"] == "f.csv"
    assert ledger.counts("new") == {PENDING: 4}  # two whole chunks; the fifth row's chunk never committed
    assert ledger.add_jobs_chunked("new", (job(f"r{n}") for n in range(6)), chunk=4) == 2
    assert ledger.counts("new") == {PENDING: 6}
    assert ledger.batch("new")["options"] == {"n": 1}  # type: ignore[index]  # no options: left alone
    assert ledger.add_jobs_chunked("empty", iter(())) == 0 and ledger.batch("empty") is not None


# -- one downloader per job --------------------------------------------------------------------------
def test_only_one_downloader_holds_a_job(ledger: Ledger, store_url: str) -> None:
    job_id = succeeded(ledger, "r")
    other = Ledger(store_url)
    claimed = ledger.claim_download(job_id, 60)
    assert claimed is not None and claimed["download_owner"] == ledger.owner
    assert other.claim_download(job_id, 60) is None
    assert ledger.claim_download(job_id, 60) is None  # a second worker of the same process, too
    assert not other.release_download(job_id)  # not theirs to release
    assert ledger.release_download(job_id)
    assert other.claim_download(job_id, 60) is not None
    assert ledger.transition(job_id, SUCCEEDED, DONE)
    row = ledger.job(job_id)
    assert row is not None and row["download_owner"] is None and row["download_until"] is None
    assert ledger.claim_download(job_id, 60) is None  # done: nothing left to download


def test_an_expired_download_claim_is_taken_over(ledger: Ledger, store_url: str) -> None:
    job_id = succeeded(ledger, "r")
    assert ledger.claim_download(job_id, lease_seconds=-1) is not None  # a lease that already ran out
    taken = Ledger(store_url).claim_download(job_id, 60)
    assert taken is not None and taken["download_owner"] != ledger.owner
    (pending,) = ledger.add_jobs("b", [job("p")])
    assert ledger.claim_download(pending, 60) is None  # only succeeded jobs are downloaded


def test_a_live_process_keeps_its_claim_and_a_dead_one_loses_it(ledger: Ledger, store_url: str) -> None:
    job_id = succeeded(ledger, "r")
    code = (
        "import sys; from kie.store import Ledger; "
        f"held = Ledger({store_url!r}).claim_download({job_id!r}, 3600); "
        "print('claimed' if held else 'refused', flush=True); sys.stdin.read()"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    assert child.stdout is not None and child.stdin is not None
    assert child.stdout.readline().strip() == "claimed"
    assert ledger.claim_download(job_id, 60) is None  # the other process is alive and holds it
    child.stdin.close()  # it ends without releasing, as a crash would
    assert child.wait() == 0
    assert ledger.claim_download(job_id, 60) is not None


# -- one job per file name ---------------------------------------------------------------------------
def test_a_stem_belongs_to_one_job_per_folder(ledger: Ledger, store_url: str, tmp_path: Path) -> None:
    a, b, c, d, e = ledger.add_jobs("b", [job(n) for n in "abcde"])
    out = str(tmp_path / "out")
    assert ledger.claim_stem(a, out, "x") == "x"
    assert ledger.claim_stem(a, out, "x") == "x"
    assert ledger.claim_stem(b, out, "x") == "x~2"
    assert ledger.claim_stem(c, out, "x") == "x~3"
    assert ledger.claim_stem(d, out, "x-2") == "x-2"  # a row's own name never meets a renamed stem
    assert ledger.claim_stem(e, out, "x~2") == "x_2"
    assert ledger.claim_stem(b, str(tmp_path / "elsewhere"), "x") == "x"
    restarted = Ledger(store_url)
    assert restarted.claim_stem(b, out, "anything") == "x~2"
    assert restarted.claim_stem(b, f"{tmp_path}/./out/", "x") == "x~2"  # the same folder, spelled otherwise


def test_ids_that_sanitize_alike_get_different_stems(ledger: Ledger, tmp_path: Path) -> None:
    ids = ledger.add_jobs("b", [job(n) for n in ("1", "2", "3")])
    stems = [
        ledger.claim_stem(i, str(tmp_path), name) for i, name in zip(ids, ("a/b", "a_b", "a b"), strict=True)
    ]
    assert stems == ["a_b", "a_b~2", "a_b~3"]


def test_files_already_on_disk_keep_their_names(ledger: Ledger, tmp_path: Path) -> None:
    (tmp_path / "y-1.png").write_bytes(b"someone else's")
    (tmp_path / "z.json").write_text("{}")
    (tmp_path / "ww-1.png").write_bytes(b"not w's")
    owner, y, z, w = ledger.add_jobs("b", [job("own"), job("y"), job("z"), job("w")])
    (tmp_path / "own-1.png").write_bytes(b"own")
    row = {"url": "u", "path": str(tmp_path / "own-1.png"), "size": 3, "sha256": "s", "content_type": None}
    ledger.record_files(owner, [row])
    assert ledger.claim_stem(y, str(tmp_path), "y") == "y~2"
    assert ledger.claim_stem(z, str(tmp_path), "z") == "z~2"
    assert ledger.claim_stem(w, str(tmp_path), "w") == "w"
    assert ledger.claim_stem(y, str(tmp_path), "own") == "y~2"  # already has its stem here
    (other,) = ledger.add_jobs("b", [job("other")])
    assert ledger.claim_stem(other, str(tmp_path), "own") == "own~2"  # another job's file
    assert ledger.claim_stem(owner, str(tmp_path), "own") == "own"  # its own file does not block it


def test_concurrent_claims_never_share_a_stem(ledger: Ledger, store_url: str, tmp_path: Path) -> None:
    ids = ledger.add_jobs("b", [job(f"r{n}") for n in range(8)])
    ledgers = [Ledger(store_url) for _ in range(4)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        stems = list(pool.map(lambda n: ledgers[n % 4].claim_stem(ids[n], str(tmp_path), "same"), range(8)))
    assert sorted(stems) == sorted(["same", *(f"same~{n}" for n in range(2, 9))])


def test_a_file_path_belongs_to_one_job(ledger: Ledger) -> None:
    a, b = ledger.add_jobs("b", [job("a"), job("b")])
    row = {"url": "u", "path": "out/a-1.png", "size": 3, "sha256": "s", "content_type": "image/png"}
    ledger.record_files(a, [row])
    ledger.record_files(a, [row])  # the same job again: fine
    with pytest.raises(KieError) as caught:
        ledger.record_files(b, [{**row, "path": "out/b-1.png"}, row])
    message = str(caught.value)
    assert (
        message == f"File out/a-1.png already belongs to job {a}; give job {b} another output name or folder."
    )
    assert ledger.files_of(b) == [] and len(ledger.files_of(a)) == 1


# -- evidence and attaching -------------------------------------------------------------------------
def test_attach_task_moves_to_running_and_guards_the_task_id(ledger: Ledger) -> None:
    lost, other, sending = ledger.add_jobs("b", [job("lost"), job("other"), job("sending")])
    for job_id in (lost, other):
        claimed = ledger.claim_for_submit(job_id, lease_seconds=-1)
        assert claimed is not None
    assert ledger.expire_leases("b") == 2
    assert ledger.attach_task(lost, "t-1", detail={"via": "callback"})
    row = ledger.job(lost)
    assert row is not None and (row["state"], row["task_id"]) == (RUNNING, "t-1")
    assert ledger.events_of(lost)[-1]["detail"] == {"via": "callback"}
    assert not ledger.attach_task(lost, "t-1")  # already running: nothing to do
    with pytest.raises(ValidationError) as caught:
        ledger.attach_task(other, "t-1")
    assert str(caught.value) == f"Task t-1 already belongs to job {lost}; each task belongs to one job."
    assert ledger.job(other)["state"] == UNKNOWN  # type: ignore[index]
    assert ledger.claim_for_submit(sending, 60) is not None
    assert not ledger.attach_task(sending, "t-2")  # only from the states asked for
    assert ledger.attach_task(sending, "t-2", from_states=(SUBMITTING, UNKNOWN))


# -- the callback replay cache ------------------------------------------------------------------------
def test_seen_callback_remembers_keys_across_restarts_and_forgets_old_ones(
    ledger: Ledger, store_url: str
) -> None:
    assert ledger.seen_callback("k", now=1000.0, window=60) is False
    assert ledger.seen_callback("k", now=1001.0, window=60) is True
    restarted = Ledger(store_url)
    assert restarted.seen_callback("k", now=1010.0, window=60) is True
    assert restarted.seen_callback("x" * 300, now=1011.0, window=60) is False  # long keys are hashed
    assert restarted.seen_callback("x" * 300, now=1012.0, window=60) is True
    assert restarted.seen_callback("later", now=1100.0, window=60) is False  # purges what is older
    assert restarted.seen_callback("k", now=1101.0, window=60) is False


# -- reads do not wait for writers --------------------------------------------------------------------
def test_reads_do_not_wait_for_a_writer(ledger: Ledger, store_url: str) -> None:
    (job_id,) = ledger.add_jobs("b", [job("r")])
    writer = create_engine(store_url)
    try:
        with writer.connect() as c:
            c.execute(update(jobs).where(jobs.c.id == job_id).values(state="failed"))  # holds the write lock
            assert ledger.job(job_id)["state"] == PENDING  # type: ignore[index]
            assert ledger.counts("b") == {PENDING: 1}
            assert [j["id"] for j, _ in ledger.iter_jobs(batch_id="b")] == [job_id]
            c.rollback()
    finally:
        writer.dispose()
    claimed = ledger.claim_for_submit(job_id, 60)  # and writes still go through
    assert claimed is not None and claimed["state"] == SUBMITTING


# -- the shared limiter ------------------------------------------------------------------------------
def test_processes_creating_the_limiter_at_once_all_get_a_slot(ledger: Ledger, store_url: str) -> None:
    ledgers = [Ledger(store_url) for _ in range(4)]
    start = threading.Barrier(4)

    def reserve(other: Ledger) -> float:
        start.wait()
        return other.reserve_slot("fresh", 0.5)

    with ThreadPoolExecutor(max_workers=4) as pool:
        waits = list(pool.map(reserve, ledgers))
    assert waits.count(0.0) == 1 and all(w > 0 for w in waits if w != 0.0)
