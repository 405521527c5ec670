"""The gallery's marks on results (star, reject, archive, rating, tags), and its indexes.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "kie_marks",
        sa.Column("job_id", sa.String(32), sa.ForeignKey("kie_jobs.id"), primary_key=True),
        sa.Column("starred", sa.Boolean, nullable=False),
        sa.Column("rejected", sa.Boolean, nullable=False),
        sa.Column("archived", sa.Boolean, nullable=False),
        sa.Column("rating", sa.Integer, nullable=True),
        sa.Column("tags", sa.JSON, nullable=True),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_index("ix_kie_marks_starred", "kie_marks", ["starred"])
    op.create_index("ix_kie_jobs_created", "kie_jobs", ["created_at", "id"])
    op.create_index("ix_kie_files_sha256", "kie_files", ["sha256"])


def downgrade() -> None:
    op.drop_index("ix_kie_files_sha256", table_name="kie_files")
    op.drop_index("ix_kie_jobs_created", table_name="kie_jobs")
    op.drop_index("ix_kie_marks_starred", table_name="kie_marks")
    op.drop_table("kie_marks")
