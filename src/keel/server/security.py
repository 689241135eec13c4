"""Who is asking, and may they: tokens, roles, per-route permissions, and the Host header check.

Every route declares exactly one permission by depending on one of ``PUBLIC``, ``READ``, ``WRITE``,
``APPROVE`` or ``ADMIN``; each of the last four resolves to the workspace *acting as* the authenticated
user, so every change the route makes is attributed to them in the audit log. A test walks every route
of the app and fails on one without a declared permission.

Credentials come from ``Authorization: Bearer`` (scripts, the SDK) or the web UI's session cookie. A
browser attaches the cookie to requests other sites make it send, so a change (any method but GET, HEAD,
OPTIONS) authenticated by the cookie also needs the session's CSRF token (a form field the UI checks, or
the ``X-CSRF-Token`` header), and any change whose Origin header names another site is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from keel.errors import PermissionDenied, Unauthenticated
from keel.tokens import VerifiedTokens
from keel.users import ROLES, UserInfo, role_allows
from keel.workspace import Workspace

__all__ = ["ADMIN", "APPROVE", "CSRF_COOKIE", "CSRF_FIELD", "CSRF_HEADER", "PERMISSIONS", "PUBLIC", "READ",
           "SAFE_METHODS", "SESSION_COOKIE", "WRITE", "HostGuard", "ServerState", "api_routes", "csrf_token",
           "is_loopback", "permission_of", "refuse_cross_origin"]

PERMISSIONS = {"public": None, "read": "viewer", "write": "developer", "approve": "approver", "admin": "admin"}
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SESSION_COOKIE = "keel_token"  # the web UI's session token (HttpOnly, SameSite=Strict)
CSRF_COOKIE = "keel_csrf"  # before login (or with --no-auth): the random secret CSRF tokens derive from
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


@dataclass
class ServerState:
    """What every request needs: the workspace, whether auth is on, the tokens verified lately, and the
    per-user views of the workspace."""

    workspace: Workspace
    auth: bool = True
    views: dict[str, Workspace] = field(default_factory=dict)
    tokens: VerifiedTokens = field(init=False)

    def __post_init__(self) -> None:
        self.tokens = VerifiedTokens(self.workspace.tokens, self.workspace.settings.token_cache_seconds)

    async def authenticate(self, token: str) -> UserInfo:
        """The token's user: from memory when verified lately, else from the database (in a worker thread,
        so the event loop never waits on it)."""
        return self.tokens.cached(token) or await run_in_threadpool(self.tokens.authenticate, token)

    def view(self, user: str) -> Workspace:
        """The workspace acting as ``user`` (kept: building one costs more than a request)."""
        if user not in self.views:
            if len(self.views) > 256:
                self.views.clear()
            self.views[user] = self.workspace.acting_as(user)
        return self.views[user]


def csrf_token(secret: str) -> str:
    """The CSRF token of a browser session: an HMAC keyed by the session's secret (its HttpOnly cookie),
    so a foreign page can neither read nor compute it, and every worker agrees without shared state."""
    return hmac.new(secret.encode(), b"keel-csrf-v1", hashlib.sha256).hexdigest()


def refuse_cross_origin(request: Request) -> None:
    """A change whose Origin header is not this server (another site, or an opaque ``null`` origin) is
    refused: browsers send Origin with every cross-origin POST, scripts and the SDK send none."""
    origin = request.headers.get("origin")
    if origin is None:
        return
    host = request.headers.get("host", "").lower()
    if origin == "null" or urlsplit(origin).netloc.lower() != host:
        raise PermissionDenied(f"a change from another site ({origin}) is refused; use the keel pages themselves "
                               "or an API token")


def _bearer(request: Request) -> tuple[str | None, bool]:
    """The token, and whether it came from the session cookie (a browser sends that one by itself)."""
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
        return value.strip(), False
    token = request.cookies.get(SESSION_COOKIE)
    return token, token is not None


def _check_cookie_change(request: Request, token: str) -> None:
    """A change made with the session cookie must prove it comes from one of our pages (the UI's CSRF
    dependency has checked the form's token, or the request carries it in ``X-CSRF-Token``)."""
    if getattr(request.state, "csrf_checked", False):
        return
    sent = request.headers.get(CSRF_HEADER)
    if not sent or not hmac.compare_digest(sent, csrf_token(token)):
        raise PermissionDenied("a change authenticated by the session cookie needs its CSRF token (the pages "
                               "send it; scripts use 'Authorization: Bearer <token>' instead)")


def _authorize(permission: str) -> Callable[[Request], Workspace]:
    needed = PERMISSIONS[permission]

    async def check(request: Request) -> Workspace:  # async: a cached token costs no thread hop
        state: ServerState = request.app.state.keel
        changes = request.method not in SAFE_METHODS
        if changes:
            refuse_cross_origin(request)
        if not state.auth:
            return state.view(state.workspace.user)  # --no-auth: the single local user, as admin
        token, from_cookie = _bearer(request)
        if token is None:
            raise Unauthenticated("authentication required: send 'Authorization: Bearer <token>' "
                                  "(create one with `keel tokens create USER`)")
        user = await state.authenticate(token)
        if changes and from_cookie:
            _check_cookie_change(request, token)
        if needed is not None and not role_allows(user.role, needed):
            raise PermissionDenied(f"user {user.name!r} has the {user.role} role; this needs {needed} or above")
        request.state.user = user
        return state.view(user.name)

    check.__keel_permission__ = permission  # type: ignore[attr-defined]
    return check


async def _public(request: Request) -> None:
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
            hosts = [value for key, value in scope.get("headers") or [] if key.lower() == b"host"]
            host = hosts[0].decode("latin-1").lower() if len(hosts) == 1 else ""  # none, or two: refused
            if not self._allowed(host):
                body = json.dumps({"error": {"type": "InvalidInput", "message": f"host {host!r} is not allowed; "
                                             "start the server with --allowed-host NAME to serve it",
                                             "details": {}}}).encode()
                await send({"type": "http.response.start", "status": 400,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)

    def _allowed(self, host: str) -> bool:
        """An allowed name alone (``::1`` too), or with a numeric port (``[::1]:8080``, ``localhost:8080``)."""
        if host in self.allowed:
            return True
        name, colon, port = host.rpartition(":")
        return bool(colon) and port.isascii() and port.isdigit() and name in self.allowed \
            and (":" not in name or name.startswith("["))
