"""Alembic environment: migrations run on the connection :func:`studio.api.store.upgrade` passes in."""
from __future__ import annotations

from alembic import context

from studio.api.store import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - the store always passes its connection
    raise RuntimeError("run migrations through studio.api.store.upgrade")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
