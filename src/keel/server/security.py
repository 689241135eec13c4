"""Who is asking, and may they: tokens, roles, per-route permissions, and the Host header check.

Every route declares exactly one permission by depending on one of ``PUBLIC``, ``READ``, ``WRITE``,
``APPROVE`` or ``ADMIN``; each of the last four resolves to the workspace *acting as* the authenticated
user, so every change the route makes is attributed to them in the audit log. A test walks every route
of the app and fails on one without a declared permission.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import Depends, Request

from keel.errors import PermissionDenied, Unauthenticated
from keel.users import ROLES, role_allows
from keel.workspace import Workspace

__all__ = ["ADMIN", "APPROVE", "PERMISSIONS", "PUBLIC", "READ", "WRITE", "HostGuard", "ServerState",
           "api_routes", "is_loopback", "permission_of"]

PERMISSIONS = {"public": None, "read": "viewer", "write": "developer", "approve": "approver", "admin": "admin"}
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


@dataclass
class ServerState:
    """What every request needs: the workspace, whether auth is on, and the per-user views of it."""

    workspace: Workspace
    auth: bool = True
    views: dict[str, Workspace] = field(default_factory=dict)

    def view(self, user: str) -> Workspace:
        """The workspace acting as ``user`` (kept: building one costs more than a request)."""
        if user not in self.views:
            if len(self.views) > 256:
                self.views.clear()
            self.views[user] = self.workspace.acting_as(user)
        return self.views[user]


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
        return value.strip()
    return request.cookies.get("keel_token")


def _authorize(permission: str) -> Callable[[Request], Workspace]:
    needed = PERMISSIONS[permission]

    def check(request: Request) -> Workspace:
        state: ServerState = request.app.state.keel
        if not state.auth:
            return state.view(state.workspace.user)  # --no-auth: the single local user, as admin
        token = _bearer(request)
        if token is None:
            raise Unauthenticated("authentication required: send 'Authorization: Bearer <token>' "
                                  "(create one with `keel tokens create USER`)")
        user = state.workspace.tokens.authenticate(token)
        if needed is not None and not role_allows(user.role, needed):
            raise PermissionDenied(f"user {user.name!r} has the {user.role} role; this needs {needed} or above")
        request.state.user = user
        return state.view(user.name)

    check.__keel_permission__ = permission  # type: ignore[attr-defined]
    return check


def _public(request: Request) -> None:
    return None


_public.__keel_permission__ = "public"  # type: ignore[attr-defined]

PUBLIC = Depends(_public)
READ = Depends(_authorize("read"))
WRITE = Depends(_authorize("write"))
APPROVE = Depends(_authorize("approve"))
ADMIN = Depends(_authorize("admin"))
assert set(PERMISSIONS) - {"public"} <= {"read", "write", "approve", "admin"} and "viewer" in ROLES


def api_routes(app: Any) -> list[Any]:
    """Every API route of a FastAPI app (included routers flattened): each has path, methods, dependant."""
    from fastapi.routing import iter_route_contexts

    return [c for c in iter_route_contexts(app.routes) if hasattr(c, "dependant") and c.path.startswith("/api/")]


def permission_of(route: Any) -> str | None:
    """The permission a route declared (None: none, which the route test refuses)."""
    found = {getattr(dep.call, "__keel_permission__", None) for dep in route.dependant.dependencies}
    found.discard(None)
    return found.pop() if len(found) == 1 else None


def is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class HostGuard:
    """Refuse requests whose Host header is not one of ours: a DNS-rebound page cannot reach the API.

    Pure ASGI, so the refusal is the same structured 400 every other error is.
    """

    def __init__(self, app: Callable[..., Awaitable[None]], allowed: set[str]) -> None:
        self.app, self.allowed = app, {h.lower() for h in allowed}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1").lower()
            name = host.rsplit(":", 1)[0] if host.count(":") == 1 or host.endswith("]") or "]:" in host else host
            if name not in self.allowed and host not in self.allowed:
                body = json.dumps({"error": {"type": "InvalidInput", "message": f"host {host!r} is not allowed; "
                                             "start the server with --allowed-host NAME to serve it",
                                             "details": {}}}).encode()
                await send({"type": "http.response.start", "status": 400,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
