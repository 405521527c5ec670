"""Alembic environment: kie runs migrations itself, on the connection it already holds."""

from __future__ import annotations

from alembic import context

from kie.store.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, version_table="kie_alembic_version")
with context.begin_transaction():
    context.run_migrations()
