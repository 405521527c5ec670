"""The ledger's tables. The migration in `migrations/versions/` creates exactly these.

A job is one paid intent. Its row is written before the create request is sent, and every state change is
a fenced compare-and-set (`WHERE state = :old AND claim_seq = :seq`), so two workers or a restarted
worker can never both believe they own the send.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    literal_column,
)

metadata = MetaData()

batches = Table(
    "kie_batches",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("source", Text, nullable=True),
    Column("output_dir", Text, nullable=True),
    Column("options", JSON, nullable=False, default=dict),
    Column("paused_reason", Text, nullable=True),
    Column("created_at", Float, nullable=False),
    # The account balance when the batch first started and when its latest run ended (migration 0002).
    Column("balance_start", Float, nullable=True),
    Column("balance_end", Float, nullable=True),
    # When the last chunk of the batch's file was planned (migration 0005); None while planning is
    # under way or was cut short, so `kie batch resume` knows to carry on reading the file.
    Column("planned_at", Float, nullable=True),
    # Workers take batches by priority, highest first, then oldest (migration 0006); a cancelled batch
    # creates nothing more but still finishes and saves what is already paid for.
    Column("priority", Integer, nullable=False, default=0, server_default="0"),
    Column("cancelled_at", Float, nullable=True),
)

jobs = Table(
    "kie_jobs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("batch_id", String(64), ForeignKey("kie_batches.id"), nullable=True),
    Column("row_key", Text, nullable=True),
    Column("row_line", Integer, nullable=True),
    Column("step", Integer, nullable=False, default=0),
    Column("parent_job_id", String(32), nullable=True),
    Column("relation", String(16), nullable=True),
    Column("model", Text, nullable=False),
    Column("input", JSON, nullable=False),
    Column("input_hash", String(64), nullable=False),
    Column("pending_input", JSON, nullable=True),
    Column("output_name", Text, nullable=True),
    Column("prompt", Text, nullable=True),
    Column("state", String(16), nullable=False),
    Column("task_id", String(128), nullable=True, unique=True),
    Column("callback_token", String(64), nullable=False, unique=True),
    Column("claim_seq", Integer, nullable=False, default=0),
    Column("lease_owner", Text, nullable=True),
    Column("lease_until", Float, nullable=True),
    Column("estimated_credits", Float, nullable=True),
    Column("actual_credits", Float, nullable=True),
    Column("cost_time", Float, nullable=True),
    Column("result_urls", JSON, nullable=True),
    Column("error_code", String(32), nullable=True),
    Column("error_message", Text, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("submitted_at", Float, nullable=True),
    Column("completed_at", Float, nullable=True),
    Column("downloaded_at", Float, nullable=True),
    # Who is saving a succeeded job's files, and until when (migration 0003): one downloader per job.
    Column("download_owner", Text, nullable=True),
    Column("download_until", Float, nullable=True),
    # Who is polling a running job, and until when (migration 0006): one poller per task across all
    # workers, and a dead worker's tasks are taken over once its lease lapses. The poll schedule itself
    # needs no column: it follows from `submitted_at` and the model's learned durations.
    Column("poll_owner", Text, nullable=True),
    Column("poll_until", Float, nullable=True),
    UniqueConstraint("batch_id", "row_key", "step", name="uq_kie_jobs_row"),
    Index("ix_kie_jobs_batch_state", "batch_id", "state"),
    Index("ix_kie_jobs_state", "state"),
)

# The batch's jobs in row order (migration 0005): manifest and listing pages walk it from the last row
# seen instead of sorting the batch again for every page.
Index(
    "ix_kie_jobs_batch_order",
    jobs.c.batch_id,
    jobs.c.created_at,
    func.coalesce(jobs.c.row_line, literal_column("-1")),
    jobs.c.step,
    jobs.c.id,
)

events = Table(
    "kie_job_events",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("job_id", String(32), ForeignKey("kie_jobs.id"), nullable=False),
    Column("at", Float, nullable=False),
    Column("from_state", String(16), nullable=True),
    Column("to_state", String(16), nullable=False),
    Column("detail", JSON, nullable=True),
    Index("ix_kie_job_events_job", "job_id"),
)

files = Table(
    "kie_files",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("job_id", String(32), ForeignKey("kie_jobs.id"), nullable=False),
    Column("idx", Integer, nullable=False),
    Column("url", Text, nullable=False),
    Column("path", Text, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("content_type", Text, nullable=True),
    # The worker (host and process) that saved the file (migration 0006), for multi-machine set-ups.
    Column("saved_by", Text, nullable=True),
    UniqueConstraint("job_id", "idx", name="uq_kie_files_job_idx"),
    Index("ix_kie_files_path", "path"),
)

# A file-name stem belongs to one job per folder (migration 0003): the unique (directory, stem) pair is
# what stops two processes from both writing `<stem>-1.png`.
stems = Table(
    "kie_stems",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("directory", Text, nullable=False),
    Column("stem", Text, nullable=False),
    Column("job_id", String(32), ForeignKey("kie_jobs.id"), nullable=False),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("directory", "stem", name="uq_kie_stems_name"),
    UniqueConstraint("job_id", "directory", name="uq_kie_stems_job"),
)

# Callbacks already accepted (migration 0003), so a replayed callback is refused after a restart too.
callbacks = Table(
    "kie_callbacks",
    metadata,
    Column("key", String(128), primary_key=True),
    Column("seen_at", Float, nullable=False),
    Index("ix_kie_callbacks_seen_at", "seen_at"),
)

# Callbacks a receiver accepted, until they are processed (migration 0004): recorded before the answer,
# so a receiver killed with a queue of them picks them up again when it restarts.
inbox = Table(
    "kie_inbox",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("job_id", String(32), ForeignKey("kie_jobs.id"), nullable=False),
    Column("task_id", String(128), nullable=False),
    Column("body", JSON, nullable=False),
    Column("received_at", Float, nullable=False),
    Column("done_at", Float, nullable=True),
    Index("ix_kie_inbox_open", "done_at", "id"),
)

limiters = Table(
    "kie_limiters",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("next_at", Float, nullable=False),
)

# Every `kie worker` (and batch run) process, with its heartbeat on the database clock (migration 0006):
# `kie batch status` shows them, and a worker whose heartbeat is older than its lease is dead to the others.
workers = Table(
    "kie_workers",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("host", Text, nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", Float, nullable=False),
    Column("heartbeat_at", Float, nullable=False),
    Column("state", String(16), nullable=False),
    Column("in_hand", Integer, nullable=False, default=0),
    Column("output_root", Text, nullable=True),
    Column("batches", JSON, nullable=True),
)

# A user's marks on a result (migration 0007), set from the gallery: they never change the job itself.
marks = Table(
    "kie_marks",
    metadata,
    Column("job_id", String(32), ForeignKey("kie_jobs.id"), primary_key=True),
    Column("starred", Boolean, nullable=False, default=False),
    Column("rejected", Boolean, nullable=False, default=False),
    Column("archived", Boolean, nullable=False, default=False),
    Column("rating", Integer, nullable=True),
    Column("tags", JSON, nullable=True),
    Column("updated_at", Float, nullable=False),
    Index("ix_kie_marks_starred", "starred"),
)

# The gallery's newest-first pages walk this index from the last card seen (migration 0007), so a page
# deep into a big ledger costs what the first one does; files are served and thumbnailed by hash.
Index("ix_kie_jobs_created", jobs.c.created_at, jobs.c.id)
Index("ix_kie_files_sha256", files.c.sha256)

# A spend an agent asked for and a human must approve out of band (migration 0008): short-lived, used once.
quotes = Table(
    "kie_quotes",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("request", JSON, nullable=False),
    Column("credits", Float, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("approved_at", Float, nullable=True),
    Column("used_at", Float, nullable=True),
    Index("ix_kie_quotes_request", "request_hash"),
)
