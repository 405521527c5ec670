"""One path for "a job finished", whoever brings the news.

A poll in the batch engine, a callback in the receiver, a resumed batch, `kie generate` and
`kie task get` all end a job here: record Kie's verdict, become the one process that saves the files,
save them under the job's own file name, write the manifest line and hand the result to the next
pipeline step. Before this module the receiver kept its own copy of those steps, and it saved a
pipeline step under its row's plain name (overwriting step 0) and never fed the next step.

`finish` is a flow (see `kie.protocol.flows`): it yields download effects and makes its ledger writes
directly, so the sync and the async client drive the very same code.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kie import catalog
from kie.catalog.spec import ModelSpec
from kie.errors import KieError
from kie.protocol import flows
from kie.protocol.files import SavedFile
from kie.protocol.flows import Flow
from kie.protocol.task import TaskState, TaskStatus
from kie.store import DONE, FAILED, PENDING, REJECTED, RUNNING, SUCCEEDED, UNKNOWN, Ledger, Record

MANIFEST = "manifest.jsonl"
# How long one process may hold a job's download before another may take it over.
DOWNLOAD_LEASE = 600.0


@dataclass
class Finished:
    """What `finish` did: the files it saved (empty when another process is saving them, or the task
    failed), the pipeline steps it made ready, and the error that stopped the save, if any."""

    job_id: str
    state: str
    saved: list[SavedFile] = field(default_factory=list)
    children: list[str] = field(default_factory=list)
    error: KieError | None = None
    job: Record | None = None  # the job's row as this call left it


def record(ledger: Ledger, job_id: str, status: TaskStatus, via: str) -> bool:
    """Record Kie's terminal verdict on a running job (a compare-and-set: the first news wins)."""
    return _record(ledger, job_id, status, via, claim=False) is not None


def _record(ledger: Ledger, job_id: str, status: TaskStatus, via: str, *, claim: bool) -> Record | None:
    """The moved row, or None when the job was not running. With `claim`, a success also makes this
    process its downloader in the same write: whoever records the result saves it."""
    if status.state is TaskState.SUCCEEDED:
        now = time.time()
        download = {"download_owner": ledger.owner, "download_until": now + DOWNLOAD_LEASE} if claim else {}
        return ledger.move(
            job_id,
            RUNNING,
            SUCCEEDED,
            {"via": via, "cost_time": status.cost_time},
            result_urls=list(status.result_urls),
            cost_time=status.cost_time,
            completed_at=now,
            actual_credits=status.credits_consumed,
            **download,
        )
    if status.state is TaskState.FAILED:
        return ledger.move(
            job_id,
            RUNNING,
            FAILED,
            {"via": via, "fail_code": status.fail_code},
            error_code=status.fail_code,
            error_message=status.fail_msg,
            completed_at=time.time(),
        )
    return None


def stem_for(job: Record) -> str:
    """The name a job's files want: the row's `output` or key (the task or job id otherwise), and the
    pipeline step after it. `Ledger.claim_stem` makes it unique within the folder."""
    base = job["output_name"] or job["row_key"] or job["task_id"] or job["id"]
    return f"{base}-s{job['step']}" if job["step"] else str(base)


def output_dir_for(ledger: Ledger, job: Record, default: Path) -> Path:
    """A batch job's files go to its batch's folder, wherever the news of it arrives."""
    if job["batch_id"]:
        batch = ledger.batch(job["batch_id"])
        if batch is not None and batch["output_dir"]:
            return Path(batch["output_dir"])
    return default


def finish(
    ledger: Ledger,
    job_id: str,
    status: TaskStatus,
    *,
    output_dir: Path,
    via: str,
    pipelines: bool = True,
    batch_id: str | None = None,
) -> Flow:
    """End a job with its terminal `status`; returns `Finished`. Safe to call from several processes
    and for duplicate news: only the claimant of the download saves, and every write is fenced.

    `batch_id` names the batch whose folder `output_dir` already is (the batch engine's own), which
    saves looking the folder up per job; `pipelines=False` says the batch has no later steps."""
    moved = _record(ledger, job_id, status, via, claim=True)
    job = moved if moved is not None else ledger.job(job_id)
    if job is None:
        return Finished(job_id, "missing")
    known = batch_id is not None and job["batch_id"] == batch_id
    if job["state"] == FAILED:
        append_manifest(
            ledger, job, output_dir if known else output_dir_for(ledger, job, output_dir), files=[]
        )
        return Finished(job_id, FAILED, job=job)
    if job["state"] != SUCCEEDED:
        return Finished(job_id, job["state"], job=job)
    claimed = job if moved is not None else ledger.claim_download(job_id, DOWNLOAD_LEASE)
    if claimed is None:  # another process is saving it, or already has
        return Finished(job_id, SUCCEEDED, job=job)
    folder = output_dir if known else output_dir_for(ledger, claimed, output_dir)
    result = status if status.result_urls or status.extra else _status_of(claimed)
    try:
        stem = ledger.claim_stem(job_id, str(folder), stem_for(claimed))
        saved: list[SavedFile] = yield from flows.download(result, folder, stem)
        rows = [_file_row(s) for s in saved]
        ledger.record_files(job_id, rows)
    except (KieError, OSError) as exc:
        ledger.release_download(job_id)
        error = (
            exc
            if isinstance(exc, KieError)
            else KieError(f"Saving task {result.task_id}'s files failed: {exc}")
        )
        return Finished(job_id, SUCCEEDED, error=error, job=claimed)
    # The next steps get their input before this one counts as done: whoever sees it done may submit
    # them at once, and a crash in between only repeats this idempotent hand-over.
    children = release_children(ledger, claimed) if pipelines and claimed["batch_id"] else []
    done = ledger.move(job_id, SUCCEEDED, DONE, {"files": len(saved), "via": via}, downloaded_at=time.time())
    if done is None:  # finished meanwhile by another process: its row is the one to report
        done = ledger.job(job_id) or claimed
        append_manifest(ledger, done, folder)
    else:
        append_manifest(ledger, done, folder, files=rows)
    return Finished(job_id, DONE, saved, children, job=done)


def _status_of(job: Record) -> TaskStatus:
    """The result as the ledger recorded it (a resumed batch downloading a job another run settled)."""
    return TaskStatus(job["task_id"], TaskState.SUCCEEDED, result_urls=tuple(job["result_urls"] or ()))


def _file_row(saved: SavedFile) -> dict[str, Any]:
    return {
        "url": saved.url,
        "path": str(saved.path),
        "size": saved.size,
        "sha256": saved.sha256,
        "content_type": saved.content_type,
    }


def release_children(ledger: Ledger, parent: Record) -> list[str]:
    """Feed a finished step's first result into the next step's input; return the steps now ready."""
    children = ledger.children_of(parent["id"], states=[PENDING])
    if not children:
        return []
    files = ledger.files_of(parent["id"])
    url = (parent["result_urls"] or [files[0]["url"] if files else None])[0]
    ready = []
    for child in children:
        spec = catalog.get(child["model"])
        source = (child["pending_input"] or {}).get("_from") or first_media_field(spec)
        values = {k: v for k, v in dict(child["input"]).items() if k != "_from"}
        if source and url:
            field_spec = spec.fields.get(source)
            values[source] = [url] if field_spec is not None and "array" in field_spec.types else url
        if ledger.transition(child["id"], PENDING, PENDING, {"input_from": parent["id"]}, input=values):
            ready.append(child["id"])
    return ready


def first_media_field(spec: ModelSpec) -> str | None:
    for name, field_spec in spec.fields.items():
        if field_spec.media == "image":
            return name
    for name, field_spec in spec.fields.items():
        if field_spec.media is not None:
            return name
    return None


# -- the manifest ---------------------------------------------------------------------------------------
MANIFEST_STATES = (DONE, FAILED, REJECTED, UNKNOWN)
# What a manifest line shows of a job and its files: read nothing else for a batch's manifest.
MANIFEST_COLUMNS = (
    "row_key",
    "step",
    "id",
    "model",
    "task_id",
    "state",
    "actual_credits",
    "estimated_credits",
    "error_message",
    "path",
    "sha256",
    "size",
)


def manifest_row(job: Record, files: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {
        "row": job["row_key"],
        "step": job["step"],
        "job": job["id"],
        "model": job["model"],
        "task_id": job["task_id"],
        "state": job["state"],
        "credits": job["actual_credits"] if job["actual_credits"] is not None else job["estimated_credits"],
        "files": [{"path": f["path"], "sha256": f["sha256"], "size": f["size"]} for f in files],
        "error": job["error_message"] if job["state"] in (FAILED, REJECTED, UNKNOWN) else None,
    }


def append_manifest(
    ledger: Ledger, job: Record, folder: Path, files: Sequence[Mapping[str, Any]] | None = None
) -> None:
    """One line per finished batch job, written with a single append so that lines from several
    processes never interleave. `files` are the job's file rows when the caller has them in hand."""
    if not job["batch_id"]:
        return
    line = (
        json.dumps(manifest_row(job, list(files) if files is not None else ledger.files_of(job["id"]))) + "\n"
    )
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / MANIFEST, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode("utf-8"))
    finally:
        os.close(fd)


def write_manifest(ledger: Ledger, batch_id: str, folder: Path) -> Path:
    """Rewrite the manifest from the ledger, so the two agree. The temporary file is this process's
    own: two processes finishing one batch never write each other's half-file."""
    path = folder / MANIFEST
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{MANIFEST}.{os.getpid()}.tmp"
    with tmp.open("w", encoding="utf-8") as handle:
        for job, files in ledger.iter_jobs(
            batch_id=batch_id, states=list(MANIFEST_STATES), page=2000, columns=MANIFEST_COLUMNS
        ):
            handle.write(json.dumps(manifest_row(job, files)) + "\n")
    tmp.replace(path)
    return path
