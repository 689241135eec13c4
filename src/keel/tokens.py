"""API tokens: how people and jobs prove who they are to a keel server.

A token is ``keel_<id>_<secret>``. Only the sha256 of the secret is stored (the secret is 32 random
bytes, so a fast hash is enough: there is nothing to brute-force); the id finds the row and the digest
is compared in constant time. Tokens expire when asked to and can be revoked; both are checked on
every request.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from keel.audit import AuditLog
from keel.errors import InvalidInput, NotFound, Unauthenticated
from keel.storage.db import Database
from keel.storage.schema import api_tokens, users
from keel.users import CREDENTIALS, UserInfo

__all__ = ["IssuedToken", "TokenInfo", "TokenService", "VerifiedTokens", "parse_duration"]

_TOKEN = re.compile(r"keel_([0-9a-f]{12})_([A-Za-z0-9_\-]{43})", re.ASCII)
_DURATION = re.compile(r"([0-9]+)\s*([smhdw])", re.ASCII)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_TOUCH_EVERY = timedelta(minutes=1)  # last_used_at is a hint, not a log: do not write it on every request


@dataclass(frozen=True, slots=True)
class TokenInfo:
    id: str
    user_name: str
    description: str | None
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    @property
    def active(self) -> bool:
        now = datetime.now(UTC)
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """The one moment the whole token exists outside its owner's hands: shown once, never stored."""

    token: str
    info: TokenInfo


class TokenService:
    """``ws.tokens``: create, list, revoke, and authenticate API tokens."""

    def __init__(self, db: Database, audit: AuditLog, actor: str) -> None:
        self._db, self._audit, self._actor = db, audit, actor

    def create(self, user: str, *, expires_in: timedelta | str | None = None,
               description: str | None = None) -> IssuedToken:
        lifetime = parse_duration(expires_in) if isinstance(expires_in, str) else expires_in
        if lifetime is not None and lifetime <= timedelta(0):
            raise InvalidInput("a token's lifetime must be positive, e.g. 30d or 12h")
        token_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        info = TokenInfo(token_id, user, description, now, self._actor, now + lifetime if lifetime else None,
                         None, None)
        with self._db.transaction() as conn:
            if conn.execute(sa.select(users.c.name).where(users.c.name == user)).first() is None:
                raise NotFound(f"unknown user {user!r}; add them first with `keel users add {user} --role ROLE`")
            conn.execute(api_tokens.insert().values(
                id=token_id, user_name=user, secret_sha256=_digest(secret), description=description,
                created_at=now, created_by=self._actor, expires_at=info.expires_at))
            self._audit.record(conn, actor=self._actor, action="token.create", target=f"user:{user}",
                               details={"token": token_id,
                                        "expires_at": info.expires_at.isoformat() if info.expires_at else None})
        return IssuedToken(f"keel_{token_id}_{secret}", info)

    def list(self, user: str | None = None) -> list[TokenInfo]:
        query = sa.select(*[c for c in api_tokens.c if c.name != "secret_sha256"]).order_by(api_tokens.c.created_at)
        if user is not None:
            query = query.where(api_tokens.c.user_name == user)
        with self._db.read() as conn:
            return [TokenInfo(**row._mapping) for row in conn.execute(query)]

    def revoke(self, token_id: str, *, reason: str | None = None) -> TokenInfo:
        now = datetime.now(UTC)
        with self._db.transaction() as conn:
            row = conn.execute(sa.select(api_tokens.c.user_name, api_tokens.c.revoked_at)
                               .where(api_tokens.c.id == token_id)).first()
            if row is None:
                raise NotFound(f"unknown token {token_id!r}; `keel tokens list` lists them")
            if row.revoked_at is None:
                conn.execute(api_tokens.update().where(api_tokens.c.id == token_id).values(revoked_at=now))
                self._audit.record(conn, actor=self._actor, action="token.revoke", target=f"user:{row.user_name}",
                                   reason=reason, details={"token": token_id})
        CREDENTIALS.changed()
        return next(t for t in self.list() if t.id == token_id)

    def authenticate(self, token: str) -> UserInfo:
        """The user a token belongs to; ``Unauthenticated`` for a malformed, unknown, wrong, expired or
        revoked token (one message for all, so a caller learns nothing about which)."""
        return self.verify(token)[0]

    def verify(self, token: str) -> tuple[UserInfo, datetime | None]:
        """``authenticate``, with the token's expiry (None: never), for callers that remember the answer."""
        match = _TOKEN.fullmatch(token or "")
        refused = Unauthenticated("invalid, expired or revoked token")
        if match is None:
            raise refused
        token_id, secret = match.groups()
        with self._db.read() as conn:
            row = conn.execute(
                sa.select(api_tokens.c.secret_sha256, api_tokens.c.expires_at, api_tokens.c.revoked_at,
                          api_tokens.c.last_used_at, users.c.name, users.c.role, users.c.created_at,
                          users.c.created_by)
                .join(users, users.c.name == api_tokens.c.user_name).where(api_tokens.c.id == token_id)).first()
        now = datetime.now(UTC)
        if row is None or not hmac.compare_digest(row.secret_sha256, _digest(secret)) or row.revoked_at is not None \
                or (row.expires_at is not None and row.expires_at <= now):
            raise refused
        if row.last_used_at is None or now - row.last_used_at > _TOUCH_EVERY:
            with self._db.transaction() as conn:
                conn.execute(api_tokens.update().where(api_tokens.c.id == token_id).values(last_used_at=now))
        return UserInfo(row.name, row.role, row.created_at, row.created_by), row.expires_at


class VerifiedTokens:
    """Tokens the database confirmed in the last ``ttl`` seconds, so a server answers most requests without
    a database round trip (or a thread hop) to authenticate them.

    A revocation or role change made in this process empties the cache at once (``CREDENTIALS``); one made
    by another process (the CLI, another server worker) takes effect within ``ttl`` seconds. An entry never
    outlives its token's expiry, and refusals are never cached (a new token works at once). ``ttl=0``
    checks the database on every request.
    """

    def __init__(self, tokens: TokenService, ttl: float, max_entries: int = 4096) -> None:
        self._tokens, self._ttl, self._max = tokens, ttl, max_entries
        self._entries: dict[bytes, tuple[float, UserInfo, datetime | None]] = {}
        self._generation = CREDENTIALS.generation

    def cached(self, token: str) -> UserInfo | None:
        """The user of a recently verified token, without I/O; None means ``authenticate`` must decide."""
        if self._generation != CREDENTIALS.generation:
            self._entries.clear()
            self._generation = CREDENTIALS.generation
        entry = self._entries.get(key := _cache_key(token))
        if entry is None:
            return None
        verified_at, user, expires_at = entry
        if time.monotonic() - verified_at >= self._ttl or (expires_at is not None and expires_at <= datetime.now(UTC)):
            self._entries.pop(key, None)
            return None
        return user

    def authenticate(self, token: str) -> UserInfo:
        """Check ``token`` against the database (blocking I/O) and remember it for ``ttl`` seconds."""
        generation = CREDENTIALS.generation
        user, expires_at = self._tokens.verify(token)
        if self._ttl > 0 and generation == CREDENTIALS.generation:  # not across a change made meanwhile
            if len(self._entries) >= self._max:
                self._entries.clear()
            self._entries[_cache_key(token)] = (time.monotonic(), user, expires_at)
        return user


def _cache_key(token: str) -> bytes:
    """The cache holds digests, not the tokens themselves."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def parse_duration(text: str) -> timedelta:
    """``30d``, ``12h``, ``1w2d``: a positive duration."""
    parts = _DURATION.findall(text.replace(" ", ""))
    if not parts or "".join(n + u for n, u in parts) != text.replace(" ", ""):
        raise InvalidInput(f"invalid duration {text!r}; use a number and a unit (s, m, h, d, w), e.g. 30d or 12h")
    return sum((timedelta(**{_UNITS[unit]: int(n)}) for n, unit in parts), timedelta(0))


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()
