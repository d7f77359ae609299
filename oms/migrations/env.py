"""Alembic environment: always run from oms.migrate with a connection handed over in
`config.attributes["connection"]` (no alembic.ini, no URL of its own)."""

from __future__ import annotations

from alembic import context

from oms.schema import metadata

connection = context.config.attributes["connection"]
# render_as_batch: SQLite cannot ALTER most things; batch mode copies the table instead.
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
