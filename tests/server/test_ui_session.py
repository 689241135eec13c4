"""Logging in to the UI: the pasted token is swapped for a short-lived session token in an HttpOnly,
SameSite=Strict cookie (Secure over HTTPS); logging out revokes that session and nothing else."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import keel
from keel.server.app import create_app
from keel.server.security import SESSION_COOKIE


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[keel.Workspace]:
    workspace = keel.init(tmp_path / "ws", user="admin-user")
    workspace.users.add("ana", "approver")
    yield workspace
    workspace.close()


def _login_form(client: TestClient, next: str = "/") -> dict[str, str]:
    page = client.get("/login", params={"next": next})
    assert page.status_code == 200
    return {"csrf_token": re.search(r'name="csrf_token" value="([0-9a-f]+)"', page.text).group(1),
            "next": re.search(r'name="next" value="([^"]*)"', page.text).group(1)}


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_login_sets_a_session_cookie_that_scripts_cannot_read(ws: keel.Workspace, scheme: str) -> None:
    api_token = ws.tokens.create("ana").token
    client = TestClient(create_app(ws), base_url=f"{scheme}://127.0.0.1", follow_redirects=False)
    response = client.post("/login", data={**_login_form(client, "/models"), "token": api_token})
    assert response.status_code == 303 and response.headers["location"] == "/models"
    cookie = next(c for c in response.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE + "="))
    flags = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite", "max-age", "path"} <= flags and "samesite=strict" in cookie.lower()
    assert ("secure" in flags) == (scheme == "https")
    session = cookie.split(";")[0].split("=", 1)[1].strip('"')
    assert session != api_token  # the pasted token is never kept
    info = next(t for t in ws.tokens.list("ana") if t.id == session.split("_")[1])
    assert info.description == "keel web UI session" and info.expires_at is not None
    assert ws.tokens.authenticate(session).name == "ana"


def test_a_wrong_token_is_explained_on_the_login_page(ws: keel.Workspace) -> None:
    client = TestClient(create_app(ws), base_url="http://127.0.0.1", follow_redirects=False)
    response = client.post("/login", data={**_login_form(client), "token": "keel_000000000000_nope"})
    assert response.status_code == 401 and "invalid, expired or revoked" in response.text
    assert SESSION_COOKIE + "=" not in response.headers.get("set-cookie", "")


def test_login_needs_the_csrf_token_too(ws: keel.Workspace) -> None:
    """Otherwise a foreign page could log a victim in as the attacker (login CSRF)."""
    client = TestClient(create_app(ws), base_url="http://127.0.0.1", follow_redirects=False)
    response = client.post("/login", data={"token": ws.tokens.create("ana").token})
    assert response.status_code == 403


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example", "/\\evil.example", "javascript:x",
                                    "/login"])
def test_login_never_redirects_off_the_server(ws: keel.Workspace, target: str) -> None:
    client = TestClient(create_app(ws), base_url="http://127.0.0.1", follow_redirects=False)
    form = _login_form(client)
    response = client.post("/login", data={**form, "next": target, "token": ws.tokens.create("ana").token})
    assert response.status_code == 303 and response.headers["location"] == "/"


def test_logout_revokes_the_session_and_only_the_session(ws: keel.Workspace) -> None:
    api_token = ws.tokens.create("ana").token
    client = TestClient(create_app(ws), base_url="http://127.0.0.1", follow_redirects=False)
    client.post("/login", data={**_login_form(client), "token": api_token})
    session = client.cookies.get(SESSION_COOKIE)
    home = client.get("/", headers={"accept": "text/html"})
    assert home.status_code == 200 and "ana" in home.text and "Log out" in home.text
    csrf = re.search(r'name="csrf_token" value="([0-9a-f]+)"', home.text).group(1)
    response = client.post("/logout", data={"csrf_token": csrf})
    assert response.status_code == 303 and response.headers["location"] == "/login?reason=logged-out"
    assert client.cookies.get(SESSION_COOKIE) is None
    with pytest.raises(keel.errors.Unauthenticated):
        ws.tokens.authenticate(session)
    assert ws.tokens.authenticate(api_token).name == "ana"  # the user's own token still works
    again = TestClient(create_app(ws), base_url="http://127.0.0.1", follow_redirects=False,
                       cookies={SESSION_COOKIE: session}).get("/")
    assert again.status_code == 303 and again.headers["location"].startswith("/login")
    actions = [e.action for e in ws.audit.list(target="user:ana")]
    assert "token.revoke" in actions and actions.count("token.create") == 2


def test_logout_does_not_revoke_an_api_token_put_in_the_cookie_by_hand(ws: keel.Workspace) -> None:
    from keel.server.security import csrf_token

    api_token = ws.tokens.create("ana").token
    client = TestClient(create_app(ws), base_url="http://127.0.0.1", follow_redirects=False,
                        cookies={SESSION_COOKIE: api_token})
    assert client.post("/logout", data={"csrf_token": csrf_token(api_token)}).status_code == 303
    assert ws.tokens.authenticate(api_token).name == "ana"
