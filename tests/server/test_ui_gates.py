"""The gate report pages: a page per report with its plots and evidence, linked from the model and version
pages; the override form shown only to approvers, and its POST refused without the approver role or the CSRF
token; the override shown with who and why, and audited."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from keel.errors import GatesFailed
from keel.server.app import create_app
from keel.server.security import SESSION_COOKIE, csrf_token

from .gates_ui_fixture import GatesWorkspace, build_gates_workspace

HTML = {"accept": "text/html"}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatesWorkspace]:
    built = build_gates_workspace(tmp_path_factory.mktemp("gates-ui") / "ws")
    yield built
    built.ws.close()


@pytest.fixture(scope="module")
def app(built: GatesWorkspace):
    return create_app(built.ws)


def _client(app, built: GatesWorkspace, role: str = "viewer") -> TestClient:
    return TestClient(app, base_url="http://127.0.0.1", follow_redirects=False,
                      cookies={SESSION_COOKIE: built.tokens[role]})


def test_the_report_page_shows_every_test_its_plots_and_evidence(app, built: GatesWorkspace) -> None:
    report = built.failed
    response = _client(app, built).get(f"/gates/{report.id}", headers=HTML)
    assert response.status_code == 200, response.text[:500]
    page = response.text
    assert "Gate report" in page and 'gate-verdict status-failed">failed<' in page
    for result in report.results:
        assert f'data-test="{result.name}" data-status="{result.status}"' in page, result.name
    assert 'href="/models/toy/versions/2"' in page and "split:toy-split@1" in page
    labels = re.findall(r'<svg[^>]*class="gate-plot"[^>]*aria-label="([^"]+)"', page)
    assert labels == ["slice: rmse per slice", "directional: directional curve of x1", "budget: predict latency"]
    assert 'class="bar failed"' in page
    directional = next(r for r in report.results if r.name == "directional")
    assert directional.status == "failed" and f"Evidence: {directional.evidence_rows} row(s)" in page
    assert "output (x1 + 1)" in page  # the violating rows' columns
    assert not re.search(r"<svg.*?style=.*?</svg>", page, re.S)  # the plots obey the page's CSP (no inline style)
    assert "unsafe-inline" not in response.headers["content-security-policy"]


def test_the_version_and_model_pages_link_each_report_with_its_status(app, built: GatesWorkspace) -> None:
    client = _client(app, built)
    version = client.get("/models/toy/versions/2").text
    section = version[version.index('id="gates"'):]
    assert f'href="/gates/{built.failed.id}"' in section and "status-failed" in section
    assert "promotion is blocked" in section and "directional" in section
    assert f'href="/gates/{built.failed.id}"' in version[:version.index('id="gates"')]  # the lineage graph too
    assert f'href="/gates/{built.passed.id}"' in client.get("/models/toy/versions/1").text
    model = client.get("/models/toy").text
    assert f'href="/gates/{built.failed.id}"' in model and f'href="/gates/{built.passed.id}"' in model


@pytest.mark.parametrize(("role", "shown"), [("viewer", False), ("developer", False), ("approver", True),
                                             ("admin", True)])
def test_only_approvers_see_the_override_form(app, built: GatesWorkspace, role: str, shown: bool) -> None:
    client = _client(app, built, role)
    page = client.get(f"/gates/{built.failed.id}").text
    assert ('id="override-form"' in page) is shown
    if not shown:
        assert "needs the approver role" in page
    assert 'id="override-form"' not in client.get(f"/gates/{built.passed.id}").text  # nothing to override


def test_the_report_downloads_as_one_html_file(app, built: GatesWorkspace) -> None:
    response = _client(app, built).get(f"/gates/{built.failed.id}/report.html")
    assert response.status_code == 200
    assert response.headers["content-disposition"] == f'attachment; filename="gate-{built.failed.id}.html"'
    assert "sandbox" in response.headers["content-security-policy"]
    assert response.text.startswith("<!doctype html>") and response.text.count('class="gate-plot"') == 3


def test_an_unknown_report_is_a_not_found_page(app, built: GatesWorkspace) -> None:
    response = _client(app, built).get("/gates/0000000000000000", headers=HTML)
    assert response.status_code == 404 and "no gate report" in response.text


def test_override_through_the_form_is_refused_then_done_and_audited(app, built: GatesWorkspace) -> None:
    ws = built.ws
    report = ws.gates.run("toy/2", force=True)  # a report of its own: the other tests keep theirs failed
    url = f"/gates/{report.id}/override"
    for role in ("viewer", "developer"):  # a valid form, the wrong role
        refused = _client(app, built, role).post(url, data={"csrf_token": csrf_token(built.tokens[role]),
                                                            "reason": "ship it"})
        assert refused.status_code == 403 and refused.json()["error"]["type"] == "PermissionDenied", role
    approver = _client(app, built, "approver")
    token = csrf_token(built.tokens["approver"])
    for form in ({"reason": "no token"}, {"csrf_token": "0" * 64, "reason": "forged"}):
        refused = approver.post(url, data=form)
        assert refused.status_code == 403 and "CSRF" in refused.json()["error"]["message"]
    empty = approver.post(url, data={"csrf_token": token, "reason": "  "}, headers=HTML)
    assert empty.status_code == 400 and "needs a reason" in empty.text
    assert ws.gates.report(report.id).override is None
    with pytest.raises(GatesFailed, match="failed required gate"):
        ws.models.promote("toy/2", "staging")

    done = approver.post(url, data={"csrf_token": token, "reason": "anti-monotone <b>known</b>; fix next sprint"})
    assert done.status_code == 303 and done.headers["location"] == f"/gates/{report.id}?done=overridden"
    stored = ws.gates.report(report.id).override
    assert stored["by"] == "approver-user" and stored["reason"].startswith("anti-monotone")
    page = approver.get(done.headers["location"]).text
    assert 'id="override-form"' not in page and 'id="override-done"' in page and "Overridden:" in page
    assert "anti-monotone &lt;b&gt;known&lt;/b&gt;" in page  # escaped
    version = approver.get("/models/toy/versions/2").text
    assert "approver-user</strong> (approver): anti-monotone &lt;b&gt;known" in version
    assert "may be released" in version
    entry = ws.audit.list(action="gates.override", limit=1)[0]
    assert entry.actor == "approver-user" and entry.details["report"] == report.ref
    assert "gates.override" in approver.get("/audit").text
    ws.models.promote("toy/2", "staging")  # the override releases it
