"""``ws.lineage``, ``ws.audit``, ``ws.users`` and ``ws.tokens`` over HTTP."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from keel.audit import AuditEntry
from keel.errors import NotFound
from keel.lineage import LineageNode
from keel.remote.client import Client, join
from keel.remote.decode import decode, decode_list
from keel.tokens import IssuedToken, TokenInfo
from keel.users import UserInfo

__all__ = ["RemoteAudit", "RemoteLineage", "RemoteTokens", "RemoteUsers"]


def _node(data: dict[str, Any]) -> LineageNode:
    return LineageNode(data["ref"], data.get("relation"), [_node(c) for c in data.get("children", [])])


class RemoteLineage:
    """Walks the server's lineage graph; any ref a user types works (``price@champion``, ``listings``)."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def upstream(self, ref: str, depth: int | None = None) -> LineageNode:
        return _node(self._client.get(join("lineage") + "/" + _path(ref), direction="up", depth=depth))

    def downstream(self, ref: str, depth: int | None = None) -> LineageNode:
        return _node(self._client.get(join("lineage") + "/" + _path(ref), direction="down", depth=depth))


def _path(ref: str) -> str:
    return "/".join(join(part)[1:] for part in ref.split("/"))


class RemoteAudit:
    def __init__(self, client: Client) -> None:
        self._client = client

    def list(self, *, target: str | None = None, action: str | None = None, limit: int = 100) -> list[AuditEntry]:
        """Newest first; ``target`` matches a ref exactly or as a prefix ending in '@' or '/'."""
        return decode_list(AuditEntry, self._client.get("/audit", target=target, action=action, limit=limit))


class RemoteUsers:
    """People and roles; everything but ``me`` needs an admin's token."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def me(self) -> UserInfo:
        return decode(UserInfo, self._client.get("/me"))

    def get(self, name: str) -> UserInfo:
        me = self.me()
        if me.name == name:
            return me
        found = [u for u in self.list() if u.name == name]
        if not found:
            raise NotFound(f"unknown user {name!r}")
        return found[0]

    def list(self) -> list[UserInfo]:
        return decode_list(UserInfo, self._client.get("/users"))

    def add(self, name: str, role: str = "developer", *, reason: str | None = None) -> UserInfo:
        return decode(UserInfo, self._client.post("/users", {"name": name, "role": role, "reason": reason}))

    def set_role(self, name: str, role: str, *, reason: str | None = None) -> UserInfo:
        return decode(UserInfo, self._client.put(join("users", name, "role"), {"role": role, "reason": reason}))


class RemoteTokens:
    """API tokens (admins only)."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def create(self, user: str, *, expires_in: timedelta | str | None = None,
               description: str | None = None) -> IssuedToken:
        if isinstance(expires_in, timedelta):
            expires_in = f"{max(int(expires_in.total_seconds()), 1)}s"
        found = self._client.post("/tokens", {"user": user, "expires_in": expires_in, "description": description})
        return IssuedToken(found["token"], decode(TokenInfo, found["info"]))

    def list(self, user: str | None = None) -> list[TokenInfo]:
        return decode_list(TokenInfo, self._client.get("/tokens", user=user))

    def revoke(self, token_id: str, *, reason: str | None = None) -> TokenInfo:
        return decode(TokenInfo, self._client.delete(join("tokens", token_id), reason=reason))
