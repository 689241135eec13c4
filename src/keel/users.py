"""People and their roles: who may approve and promote models (the server enforces the rest, #4).

Roles, from least to most: ``viewer`` (read), ``developer`` (write runs, data, models), ``approver``
(developer + approve and promote to production), ``admin`` (users, tokens, settings, overrides).
A user keel has never heard of acts as a developer: embedded workspaces work without any setup, while
approvals need someone to have been given the approver role on purpose.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from keel.audit import AuditLog
from keel.errors import Conflict, InvalidInput, NotFound
from keel.refs import check_name
from keel.storage.db import Database
from keel.storage.schema import users

__all__ = ["CREDENTIALS", "DEFAULT_ROLE", "ROLES", "CredentialChanges", "UserInfo", "UserService", "role_allows"]

ROLES = ("viewer", "developer", "approver", "admin")
DEFAULT_ROLE = "developer"


class CredentialChanges:
    """A counter this process bumps whenever a role changes or a token is revoked, so anything that caches
    who a token belongs to (the server's verified tokens) can tell its entries are stale at once."""

    def __init__(self) -> None:
        self.generation = 0

    def changed(self) -> None:
        self.generation += 1


CREDENTIALS = CredentialChanges()


def role_allows(role: str, needed: str) -> bool:
    """True if ``role`` is ``needed`` or above it."""
    return ROLES.index(role) >= ROLES.index(needed)


@dataclass(frozen=True, slots=True)
class UserInfo:
    name: str
    role: str
    created_at: datetime | None
    created_by: str | None
    known: bool = True  # False: never added, acting with the default role


class UserService:
    """``ws.users``: add people, give them roles, look a role up."""

    def __init__(self, db: Database, audit: AuditLog, actor: str) -> None:
        self._db, self._audit, self._actor = db, audit, actor

    def add(self, name: str, role: str = DEFAULT_ROLE, *, reason: str | None = None) -> UserInfo:
        check_name(name, "user name")
        _check_role(role)
        now = datetime.now(UTC)

        def insert(conn: sa.Connection) -> None:
            if conn.execute(sa.select(users.c.name).where(users.c.name == name)).first() is not None:
                raise Conflict(f"user {name!r} exists; change the role with `keel users set-role {name} ROLE`")
            conn.execute(users.insert().values(name=name, role=role, created_at=now, created_by=self._actor))
            self._audit.record(conn, actor=self._actor, action="user.add", target=f"user:{name}", reason=reason,
                               details={"role": role})

        self._db.retrying(insert)
        return UserInfo(name, role, now, self._actor)

    def set_role(self, name: str, role: str, *, reason: str | None = None) -> UserInfo:
        _check_role(role)
        with self._db.transaction() as conn:
            old = conn.execute(sa.select(users.c.role).where(users.c.name == name)).scalar()
            if old is None:
                raise NotFound(f"unknown user {name!r}; add them with `keel users add {name} --role {role}`")
            conn.execute(users.update().where(users.c.name == name).values(role=role))
            self._audit.record(conn, actor=self._actor, action="user.role", target=f"user:{name}", reason=reason,
                               details={"from": old, "to": role})
        CREDENTIALS.changed()
        return self.get(name)

    def get(self, name: str) -> UserInfo:
        """The stored user, or an unknown one acting with the default role."""
        with self._db.read() as conn:
            row = conn.execute(sa.select(users).where(users.c.name == name)).first()
        if row is None:
            return UserInfo(name, DEFAULT_ROLE, None, None, known=False)
        return UserInfo(**row._mapping)

    def list(self) -> list[UserInfo]:
        with self._db.read() as conn:
            return [UserInfo(**row._mapping) for row in conn.execute(sa.select(users).order_by(users.c.name))]


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise InvalidInput(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
