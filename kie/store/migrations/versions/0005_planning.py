"""Batches planned in chunks say when planning is complete; jobs are read in row order by an index.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("kie_batches") as table:
        table.add_column(sa.Column("planned_at", sa.Float, nullable=True))
    # Batches that existed before were planned in one transaction: they are complete.
    op.execute("UPDATE kie_batches SET planned_at = created_at")
    op.create_index(
        "ix_kie_jobs_batch_order",
        "kie_jobs",
        ["batch_id", "created_at", sa.text("coalesce(row_line, -1)"), "step", "id"],
    )


def downgrade() -> None:
    op.drop_index("ix_kie_jobs_batch_order", table_name="kie_jobs")
    with op.batch_alter_table("kie_batches") as table:
        table.drop_column("planned_at")
