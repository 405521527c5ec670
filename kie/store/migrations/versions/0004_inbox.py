"""Callbacks a receiver accepted, kept until processed: a killed `kie serve` loses none of them.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

BIGINT = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "kie_inbox",
        sa.Column("id", BIGINT, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.String(32), sa.ForeignKey("kie_jobs.id"), nullable=False),
        sa.Column("task_id", sa.String(128), nullable=False),
        sa.Column("body", sa.JSON, nullable=False),
        sa.Column("received_at", sa.Float, nullable=False),
        sa.Column("done_at", sa.Float, nullable=True),
    )
    op.create_index("ix_kie_inbox_open", "kie_inbox", ["done_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_kie_inbox_open", table_name="kie_inbox")
    op.drop_table("kie_inbox")
