"""Logging in to the UI with an API token, and out again.

The pasted token is checked and then forgotten: the browser gets a *session* token of its own, minted
for the same user with a 12-hour lifetime, in an HttpOnly, SameSite=Strict cookie (Secure over HTTPS).
So a page script can never read a credential, a stolen cookie dies on its own, and logging out revokes
the session server-side without touching the user's API token.
"""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from keel.errors import KeelError, Unauthenticated
from keel.server.security import CSRF_COOKIE, PUBLIC, SESSION_COOKIE, ServerState
from keel.ui.csrf import CSRF
from keel.ui.render import page

__all__ = ["SESSION_DESCRIPTION", "SESSION_LIFETIME", "router", "safe_next"]

router = APIRouter()

SESSION_LIFETIME = timedelta(hours=12)
SESSION_DESCRIPTION = "keel web UI session"


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a path on this server only (never ``//evil.example`` or a URL)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")) \
            or any(c in target for c in "\\\r\n\t") or target.startswith("/login"):
        return "/"
    return target


def _set_session(request: Request, response: Response, token: str) -> None:
    response.set_cookie(SESSION_COOKIE, token, max_age=int(SESSION_LIFETIME.total_seconds()), httponly=True,
                        samesite="strict", secure=request.url.scheme == "https", path="/")


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, _: None = PUBLIC, next: str = "/", reason: str | None = None) -> Response:
    state: ServerState = request.app.state.keel
    if not state.auth:
        return RedirectResponse(safe_next(next), status_code=303)
    message = {"expired": "Your session has ended; log in again.",
               "logged-out": "You are logged out."}.get(reason or "")
    return page(request, "login.html", None, title="Log in", next=safe_next(next), error=None, message=message)


@router.post("/login")
def login(request: Request, _csrf: None = CSRF, _: None = PUBLIC, token: str = Form(""),
          next: str = Form("/")) -> Response:
    state: ServerState = request.app.state.keel
    if not state.auth:
        return RedirectResponse(safe_next(next), status_code=303)
    try:
        user = state.workspace.tokens.authenticate(token.strip())
    except Unauthenticated:
        return page(request, "login.html", None, status_code=401, title="Log in", next=safe_next(next),
                    error="That token is invalid, expired or revoked.", message=None)
    issued = state.view(user.name).tokens.create(user.name, expires_in=SESSION_LIFETIME,
                                                 description=SESSION_DESCRIPTION)
    response = RedirectResponse(safe_next(next), status_code=303)
    _set_session(request, response, issued.token)
    return response


@router.post("/logout")
def logout(request: Request, _csrf: None = CSRF, _: None = PUBLIC) -> Response:
    """Revoke this browser's session token (only a UI session: never an API token someone put in the
    cookie by hand) and clear the cookies."""
    state: ServerState = request.app.state.keel
    token = request.cookies.get(SESSION_COOKIE)
    if state.auth and token:
        try:
            user = state.workspace.tokens.authenticate(token)
            tokens = state.view(user.name).tokens
            token_id = token.split("_")[1]
            if any(t.id == token_id and t.description == SESSION_DESCRIPTION for t in tokens.list(user.name)):
                tokens.revoke(token_id, reason="logged out of the web UI")
        except KeelError:
            pass  # an expired or revoked session: clearing the cookie is all that is left to do
    response = RedirectResponse("/login?reason=logged-out" if state.auth else "/", status_code=303)
    for name in (SESSION_COOKIE, CSRF_COOKIE):
        response.delete_cookie(name, path="/", httponly=True, samesite="strict",
                               secure=request.url.scheme == "https")
    return response
