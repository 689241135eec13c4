"""Alembic migration history: one dialect-neutral history for SQLite and PostgreSQL."""
