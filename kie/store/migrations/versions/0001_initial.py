"""The ledger as first released: batches, jobs, their events, saved files, and the shared limiter.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BIGINT = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "kie_batches",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("source", sa.Text),
        sa.Column("output_dir", sa.Text),
        sa.Column("options", sa.JSON, nullable=False),
        sa.Column("paused_reason", sa.Text),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "kie_jobs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("batch_id", sa.String(64), sa.ForeignKey("kie_batches.id")),
        sa.Column("row_key", sa.Text),
        sa.Column("row_line", sa.Integer),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("parent_job_id", sa.String(32)),
        sa.Column("relation", sa.String(16)),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("input", sa.JSON, nullable=False),
        sa.Column("input_hash", sa.String(64), nullable=False),
        sa.Column("pending_input", sa.JSON),
        sa.Column("output_name", sa.Text),
        sa.Column("prompt", sa.Text),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("task_id", sa.String(128), unique=True),
        sa.Column("callback_token", sa.String(64), nullable=False, unique=True),
        sa.Column("claim_seq", sa.Integer, nullable=False),
        sa.Column("lease_owner", sa.Text),
        sa.Column("lease_until", sa.Float),
        sa.Column("estimated_credits", sa.Float),
        sa.Column("actual_credits", sa.Float),
        sa.Column("cost_time", sa.Float),
        sa.Column("result_urls", sa.JSON),
        sa.Column("error_code", sa.String(32)),
        sa.Column("error_message", sa.Text),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("submitted_at", sa.Float),
        sa.Column("completed_at", sa.Float),
        sa.Column("downloaded_at", sa.Float),
        sa.UniqueConstraint("batch_id", "row_key", "step", name="uq_kie_jobs_row"),
    )
    op.create_index("ix_kie_jobs_batch_state", "kie_jobs", ["batch_id", "state"])
    op.create_index("ix_kie_jobs_state", "kie_jobs", ["state"])
    op.create_table(
        "kie_job_events",
        sa.Column("id", BIGINT, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.String(32), sa.ForeignKey("kie_jobs.id"), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("from_state", sa.String(16)),
        sa.Column("to_state", sa.String(16), nullable=False),
        sa.Column("detail", sa.JSON),
    )
    op.create_index("ix_kie_job_events_job", "kie_job_events", ["job_id"])
    op.create_table(
        "kie_files",
        sa.Column("id", BIGINT, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.String(32), sa.ForeignKey("kie_jobs.id"), nullable=False),
        sa.Column("idx", sa.Integer, nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("content_type", sa.Text),
        sa.UniqueConstraint("job_id", "idx", name="uq_kie_files_job_idx"),
    )
    op.create_table(
        "kie_limiters",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("next_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    for table in ("kie_limiters", "kie_files", "kie_job_events", "kie_jobs", "kie_batches"):
        op.drop_table(table)
