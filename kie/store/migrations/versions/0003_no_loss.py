"""Never lose a paid result with several processes: one downloader per job, one job per file name,
and a durable record of callbacks already accepted.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

BIGINT = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("kie_jobs") as table:
        table.add_column(sa.Column("download_owner", sa.Text, nullable=True))
        table.add_column(sa.Column("download_until", sa.Float, nullable=True))
    op.create_index("ix_kie_files_path", "kie_files", ["path"])
    op.create_table(
        "kie_stems",
        sa.Column("id", BIGINT, primary_key=True, autoincrement=True),
        sa.Column("directory", sa.Text, nullable=False),
        sa.Column("stem", sa.Text, nullable=False),
        sa.Column("job_id", sa.String(32), sa.ForeignKey("kie_jobs.id"), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.UniqueConstraint("directory", "stem", name="uq_kie_stems_name"),
        sa.UniqueConstraint("job_id", "directory", name="uq_kie_stems_job"),
    )
    op.create_table(
        "kie_callbacks",
        sa.Column("key", sa.String(128), primary_key=True),
        sa.Column("seen_at", sa.Float, nullable=False),
    )
    op.create_index("ix_kie_callbacks_seen_at", "kie_callbacks", ["seen_at"])


def downgrade() -> None:
    op.drop_index("ix_kie_callbacks_seen_at", table_name="kie_callbacks")
    op.drop_table("kie_callbacks")
    op.drop_table("kie_stems")
    op.drop_index("ix_kie_files_path", table_name="kie_files")
    with op.batch_alter_table("kie_jobs") as table:
        table.drop_column("download_until")
        table.drop_column("download_owner")
