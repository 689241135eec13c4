"""Alembic environment: keel always passes an open connection (see storage/db.py)."""

from alembic import context

from keel.storage.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
