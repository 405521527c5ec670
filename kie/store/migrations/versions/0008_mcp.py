"""Quotes: a spend an agent asked for, waiting for a human's out-of-band approval.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "kie_quotes",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("request", sa.JSON, nullable=False),
        sa.Column("credits", sa.Float, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("approved_at", sa.Float, nullable=True),
        sa.Column("used_at", sa.Float, nullable=True),
    )
    op.create_index("ix_kie_quotes_request", "kie_quotes", ["request_hash"])


def downgrade() -> None:
    op.drop_index("ix_kie_quotes_request", table_name="kie_quotes")
    op.drop_table("kie_quotes")
