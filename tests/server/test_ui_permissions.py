"""The UI's pages declare and enforce permissions like the API: every page route declares exactly one,
an anonymous page request goes to the login page, a viewer cannot approve or promote, and every
state-changing request made with the session cookie needs the CSRF token.

The page routes are enumerated from the app at test time, so a page added without a permission fails.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from keel.server.app import create_app
from keel.server.security import SESSION_COOKIE, csrf_token, permission_of

from .ui_fixture import UIWorkspace, build_ui_workspace


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UIWorkspace]:
    built = build_ui_workspace(tmp_path_factory.mktemp("ui") / "ws")
    yield built
    built.ws.close()


@pytest.fixture(scope="module")
def app(built: UIWorkspace):
    return create_app(built.ws)


def _client(app, token: str | None = None, **options) -> TestClient:
    return TestClient(app, base_url="http://127.0.0.1", follow_redirects=False,
                      cookies={SESSION_COOKIE: token} if token else None, **options)


def _page_routes(app):
    from fastapi.routing import iter_route_contexts

    return [r for r in iter_route_contexts(app.fastapi.routes)
            if hasattr(r, "dependant") and not r.path.startswith("/api/")]


def test_every_page_route_declares_exactly_one_permission(app) -> None:
    routes = _page_routes(app)
    assert len(routes) >= 15
    assert [f"{sorted(r.methods)} {r.path}" for r in routes if permission_of(r) is None] == []
    public = {r.path for r in routes if permission_of(r) == "public"}
    assert public == {"/login", "/logout"}  # nothing else is reachable without a token


def test_anonymous_page_requests_go_to_the_login_page(app) -> None:
    client = _client(app)
    checked = 0
    for route in _page_routes(app):
        if "GET" not in route.methods or permission_of(route) == "public":
            continue
        path = re.sub(r"\{[^}]+\}", "x", route.path)
        response = client.get(path, headers={"accept": "text/html"})
        assert response.status_code == 303, (path, response.status_code, response.text[:200])
        assert response.headers["location"].startswith("/login?next="), path
        checked += 1
    assert checked >= 12
    assert client.get("/login").status_code == 200


def test_a_stale_session_is_sent_to_log_in_again(app) -> None:
    response = _client(app, "keel_0123456789ab_" + "x" * 43).get("/runs?filter=a")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2Fruns%3Ffilter%3Da&reason=expired"
    assert f'{SESSION_COOKIE}=""' in response.headers["set-cookie"]  # the dead cookie is cleared


@pytest.mark.parametrize("action", ["approve", "promote"])
def test_a_viewer_cannot_approve_or_promote_even_with_a_valid_form(app, built: UIWorkspace, action: str) -> None:
    token = built.tokens["viewer"]
    client = _client(app, token)
    form = {"csrf_token": csrf_token(token), "reason": "looks fine", "environment": "production"}
    response = client.post(f"/models/price/versions/1/{action}", data=form)
    assert response.status_code == 403, response.text
    assert response.json()["error"]["type"] == "PermissionDenied"
    assert not built.ws.models.approvals("price", 1)
    assert "production" not in built.ws.models.get("price").aliases


def test_a_developer_may_promote_to_staging_but_not_production(app, built: UIWorkspace) -> None:
    token = built.tokens["developer"]
    client = _client(app, token)
    refused = client.post("/models/price/versions/1/promote",
                          data={"csrf_token": csrf_token(token), "environment": "production"})
    assert refused.status_code == 403 and "approver" in refused.json()["error"]["message"]
    staged = client.post("/models/price/versions/1/promote",
                         data={"csrf_token": csrf_token(token), "environment": "staging", "reason": "try it"})
    assert staged.status_code == 303, staged.text
    assert built.ws.models.get("price").aliases["staging"] == 1


@pytest.mark.parametrize("form", [{}, {"csrf_token": ""}, {"csrf_token": "0" * 64}, {"csrf_token": "abc"}])
def test_a_post_without_the_csrf_token_is_refused_with_the_structured_error(app, built: UIWorkspace,
                                                                            form: dict) -> None:
    client = _client(app, built.tokens["approver"])
    response = client.post("/models/price/versions/2/approve", data={**form, "reason": "forged"})
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["type"] == "PermissionDenied" and "CSRF" in error["message"] and set(error) == {
        "type", "message", "details"}
    assert not built.ws.models.approvals("price", 2)


def test_the_csrf_token_of_another_session_does_not_work(app, built: UIWorkspace) -> None:
    client = _client(app, built.tokens["approver"])
    other = csrf_token(built.tokens["admin"])
    response = client.post("/models/price/versions/2/approve", data={"csrf_token": other, "reason": "forged"})
    assert response.status_code == 403 and not built.ws.models.approvals("price", 2)


def test_a_post_from_another_origin_is_refused_even_with_the_token(app, built: UIWorkspace) -> None:
    token = built.tokens["approver"]
    client = _client(app, token)
    for origin in ("http://evil.example", "null", "http://127.0.0.1:9999"):
        response = client.post("/models/price/versions/2/approve", headers={"origin": origin},
                               data={"csrf_token": csrf_token(token), "reason": "forged"})
        assert response.status_code == 403, origin
    assert not built.ws.models.approvals("price", 2)


def test_api_changes_made_with_the_session_cookie_need_the_csrf_header(app, built: UIWorkspace) -> None:
    """The cookie is sent by the browser on its own, so it alone cannot authorise a change through the API
    (a cross-site form could POST text/plain to an upload route); a bearer token can."""
    token = built.tokens["developer"]
    client = _client(app, token)
    assert client.get("/api/v1/runs").status_code == 200  # reading with the cookie is fine
    refused = client.post("/api/v1/runs", json={"experiment": "cookie"})
    assert refused.status_code == 403 and "CSRF" in refused.json()["error"]["message"]
    allowed = client.post("/api/v1/runs", json={"experiment": "cookie"}, headers={"x-csrf-token": csrf_token(token)})
    assert allowed.status_code == 201, allowed.text
    bearer = _client(app).post("/api/v1/runs", json={"experiment": "bearer"},
                               headers={"Authorization": f"Bearer {token}"})
    assert bearer.status_code == 201
    cross = _client(app).post("/api/v1/runs", json={"experiment": "x"},
                              headers={"Authorization": f"Bearer {token}", "origin": "http://evil.example"})
    assert cross.status_code == 403


def test_pages_are_not_framed_and_run_no_inline_script(app, built: UIWorkspace) -> None:
    response = _client(app, built.tokens["viewer"]).get(f"/runs/{built.runs['ridge']}")
    assert response.status_code == 200
    assert response.headers["x-frame-options"] == "DENY"
    policy = response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy and "unsafe-inline" not in policy
    scripts = re.findall(r"<script([^>]*)>", response.text)
    assert scripts and all('src="/static/' in s or 'type="application/json"' in s for s in scripts)


def test_no_auth_mode_still_needs_the_csrf_token(tmp_path: Path) -> None:
    """With --no-auth there is no session cookie, so the token derives from a random pre-session cookie."""
    built = build_ui_workspace(tmp_path / "ws")
    try:
        client = _client(create_app(built.ws, auth=False))
        assert client.get("/login").status_code == 303  # nothing to log in to
        page = client.get("/models/price/versions/1")
        assert page.status_code == 200 and "keel_csrf=" in page.headers["set-cookie"]
        token = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page.text).group(1)
        assert client.post("/models/price/versions/1/approve", data={"reason": "checked"}).status_code == 403
        done = client.post("/models/price/versions/1/approve", data={"csrf_token": token, "reason": "checked"})
        assert done.status_code == 303, done.text
        assert [a.approved_by for a in built.ws.models.approvals("price", 1)] == ["admin-user"]
    finally:
        built.ws.close()
