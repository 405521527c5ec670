"""Account balance seen when a batch first started and when its latest run ended.

Kie reports `creditsConsumed` for Market tasks only; for the legacy product APIs the balance delta is
the one measure of what a batch really cost.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("kie_batches") as table:
        table.add_column(sa.Column("balance_start", sa.Float, nullable=True))
        table.add_column(sa.Column("balance_end", sa.Float, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("kie_batches") as table:
        table.drop_column("balance_end")
        table.drop_column("balance_start")
