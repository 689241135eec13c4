"""CSRF protection of the UI's forms: a token derived from the session, checked on every POST.

The browser sends the session cookie with any request to this server, including one a foreign page
makes it send. So a change made through the UI must also carry a token that only our own pages know:
an HMAC of the session's secret (the HttpOnly session cookie once logged in, else a random pre-session
cookie), which a foreign page can neither read nor compute. Deriving it from the cookie needs no server
state, so every worker and replica agrees on it. The Origin header is checked too: a browser sends it
with every cross-origin POST.
"""

from __future__ import annotations

import hmac
import secrets

from fastapi import Depends, Request, Response

from keel.errors import PermissionDenied
from keel.server.security import CSRF_COOKIE, CSRF_FIELD, CSRF_HEADER, SESSION_COOKIE, csrf_token, refuse_cross_origin

__all__ = ["CSRF", "ensure_csrf_secret", "set_csrf_cookie"]


def csrf_secret(request: Request) -> str | None:
    """What this browser's CSRF token is derived from: its session, else its pre-session cookie."""
    return request.cookies.get(SESSION_COOKIE) or request.cookies.get(CSRF_COOKIE)


def ensure_csrf_secret(request: Request) -> tuple[str, bool]:
    """The secret for this browser, and whether it is new (then the page sets it as a cookie)."""
    secret = csrf_secret(request)
    return (secret, False) if secret else (secrets.token_urlsafe(32), True)


def set_csrf_cookie(request: Request, response: Response, secret: str) -> None:
    response.set_cookie(CSRF_COOKIE, secret, httponly=True, samesite="strict", path="/",
                        secure=request.url.scheme == "https")


async def _check_csrf(request: Request) -> None:
    """Refuse a POST without this browser's CSRF token (403, the structured error like any other)."""
    refuse_cross_origin(request)
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        form = await request.form()  # cached: the route's own Form() parameters read the same parsed body
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    secret = csrf_secret(request)
    if not sent or not secret or not hmac.compare_digest(sent, csrf_token(secret)):
        raise PermissionDenied("this form was not sent by a page of this keel server (missing or stale CSRF "
                               "token); reload the page and try again")
    request.state.csrf_checked = True


# declared *before* the permission on every UI POST, so the permission check sees the request is checked
CSRF = Depends(_check_csrf)
