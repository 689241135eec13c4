"""What each trigger saw last (a time, a table version, a commit), kept in the metadata store so any scheduler
goes on where another stopped. Losing a cursor is harmless: an event seen again has the same idempotency key."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from keel.storage.db import Database, is_unique_violation
from keel.storage.schema import trigger_cursors

__all__ = ["read_cursor", "save_cursor"]


def read_cursor(db: Database, subject: str, trigger: str) -> dict[str, Any] | None:
    query = sa.select(trigger_cursors.c.cursor).where(trigger_cursors.c.subject == subject,
                                                      trigger_cursors.c.trigger == trigger)
    with db.read() as conn:
        row = conn.execute(query).first()
    return None if row is None else dict(row.cursor)


def save_cursor(db: Database, subject: str, trigger: str, cursor: dict[str, Any]) -> None:
    now = datetime.now(UTC)
    with db.transaction() as conn:
        moved = conn.execute(trigger_cursors.update().where(trigger_cursors.c.subject == subject,
                                                            trigger_cursors.c.trigger == trigger)
                             .values(cursor=cursor, updated_at=now))
        if moved.rowcount:
            return
        try:
            with conn.begin_nested():
                conn.execute(trigger_cursors.insert().values(subject=subject, trigger=trigger, cursor=cursor,
                                                             updated_at=now))
        except IntegrityError as exc:  # another scheduler saved it first: its cursor is as good
            if not is_unique_violation(exc):
                raise
