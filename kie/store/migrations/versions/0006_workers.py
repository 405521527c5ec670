"""Workers on one ledger: batch priorities and cancel, poll leases on the row, a worker table.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("kie_batches") as table:
        table.add_column(sa.Column("priority", sa.Integer, nullable=False, server_default="0"))
        table.add_column(sa.Column("cancelled_at", sa.Float, nullable=True))
    with op.batch_alter_table("kie_jobs") as table:
        table.add_column(sa.Column("poll_owner", sa.Text, nullable=True))
        table.add_column(sa.Column("poll_until", sa.Float, nullable=True))
    with op.batch_alter_table("kie_files") as table:
        table.add_column(sa.Column("saved_by", sa.Text, nullable=True))
    op.create_table(
        "kie_workers",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("host", sa.Text, nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("heartbeat_at", sa.Float, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("in_hand", sa.Integer, nullable=False),
        sa.Column("output_root", sa.Text, nullable=True),
        sa.Column("batches", sa.JSON, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("kie_workers")
    with op.batch_alter_table("kie_files") as table:
        table.drop_column("saved_by")
    with op.batch_alter_table("kie_jobs") as table:
        for name in ("poll_until", "poll_owner"):
            table.drop_column(name)
    with op.batch_alter_table("kie_batches") as table:
        table.drop_column("cancelled_at")
        table.drop_column("priority")
