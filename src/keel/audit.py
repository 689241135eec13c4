"""The audit log: who changed what, when and why — for every state change a person makes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from keel.storage.db import Database
from keel.storage.schema import audit_log

__all__ = ["AuditEntry", "AuditLog"]


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    reason: str | None
    details: dict[str, Any]


class AuditLog:
    """Appends and lists audit entries (``ws.audit``); writes join the caller's transaction."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def record(
        self, conn: Connection, *, actor: str, action: str, target: str, reason: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        conn.execute(
            audit_log.insert().values(
                at=datetime.now(UTC), actor=actor, action=action, target=target, reason=reason,
                details=details or {},
            )
        )

    def list(self, *, target: str | None = None, action: str | None = None, limit: int = 100) -> list[AuditEntry]:
        """Newest first; ``target`` matches a ref exactly or as a prefix ending in '@' or '/'."""
        query = sa.select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
        if target:
            query = query.where(
                sa.or_(audit_log.c.target == target, audit_log.c.target.startswith(target + "@"),
                       audit_log.c.target.startswith(target + "/"))
            )
        if action:
            query = query.where(audit_log.c.action == action)
        with self._db.read() as conn:
            return [AuditEntry(**row._mapping) for row in conn.execute(query)]
