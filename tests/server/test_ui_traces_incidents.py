"""The trace and incident pages (issue 8) over a real data plane: a request answered by the primary and one a
fallback answered, each traced on a page (route, the version that served it with its run and data, the request's
rows, the fallback's reason, the feedback); the lookup form; incidents listed and one shown with its notes and the
timeline stored with it; a live timeline with its form; unknown ids a 404 page, bad parameters a 4xx page; viewers
may read them, anonymous requests go to the login page; every value escaped, nothing inline for the CSP."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html import escape
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import keel
from gates_helpers import FEATURES, RaisingModel, register, toy_frame, toy_world  # tests/ is on sys.path
from keel.monitoring.service import MonitorService
from keel.monitoring.timeline import KINDS
from keel.server.app import create_app
from keel.server.security import SESSION_COOKIE
from keel.serving.app import create_predictor_app
from keel.ui.incidents import KIND_WORDS, subject_url
from keel.users import ROLES

from .ui_pages import HTML
from .ui_pages import get_page as _get
from .ui_pages import section as _section

MARKUP = "<b>bold</b>"  # in a request's category and in a note: shown as text, never as markup
OK_ROWS = [{"x1": 4.25, "x2": -0.5, "cat": "b"}, {"x1": 7.5, "x2": 0.25, "cat": MARKUP}]
FALLBACK_ROWS = [{"x1": 1.125, "x2": 2.75, "cat": "c"}]  # x2 above 1.5: the primary raises
REASON = "x2 above 1.5"


@dataclass
class TracesWorkspace:
    ws: keel.Workspace
    tokens: dict[str, str]
    good: str  # the fallback that answered: a fitted version with a run and data
    raw: str  # the primary: a python model that raises on x2 > 1.5
    incident: int
    started: datetime


def _ask(ws: keel.Workspace, folder: Path, requests: dict[str, list[dict]]) -> None:
    """Each request through the data plane under its own id; the log is committed when the app stops."""
    app = create_predictor_app(ws, ["price"], log_folder=folder, trusted=True)
    with TestClient(app) as client:
        for request_id, rows in requests.items():
            reply = client.post("/v1/endpoints/price/predict", json={"records": rows},
                                headers={"x-request-id": request_id})
            assert reply.status_code == 200, reply.text
            assert reply.json()["request_id"] == request_id


def build_traces_workspace(path: Path) -> TracesWorkspace:
    """``price`` serves a python model that raises on x2 > 1.5 with ``toy/1`` then the baseline behind it; a
    monitor whose rule fires; ``req-ok`` answered by the primary, ``req-fallback`` by toy/1 (and labelled
    later); incident 1 recorded over all of it with two notes."""
    started = datetime.now(UTC) - timedelta(seconds=1)
    ws = keel.init(path, user="admin-user")
    tokens = {}
    for role in ROLES:
        ws.users.add(f"{role}-user", role)
        tokens[role] = ws.tokens.create(f"{role}-user").token
    split = toy_world(ws, n=600)
    good = register(ws, split)
    with ws.runs.start("raw") as run:  # said to be fitted on the split: the baseline and the monitor need it
        run.set_tags({"fit.data": split.ref, "fit.label": "y"})
        raw = ws.models.register(RaisingModel(), "price-raw", flavor="python", run=run,
                                 input_example=toy_frame(5)[FEATURES])
    ws.deployments.create("price", raw.name, fallbacks=[good.name, "baseline"], reason="first release")
    ws.monitors.create("watch", "price", window="1h", alerts=["rows < 1"])
    ws.monitors.run("watch", window="2020-01-01T00:00Z..2020-01-02T00:00Z")  # no rows: the rule fires
    _ask(ws, path.parent / "log", {"req-ok": OK_ROWS, "req-fallback": FALLBACK_ROWS})
    ws.deployments.feedback("price", [{"request_id": "req-fallback", "label": [12.5]}])
    made = ws.incidents.create("price", started, title="prices fell back to toy/1", severity="high",
                               note="paged at 14:02 " + MARKUP)
    ws.incidents.note(made.id, "root cause: the primary cannot handle x2 above 1.5")
    return TracesWorkspace(ws, tokens, good.name, raw.name, made.id, started)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TracesWorkspace]:
    built = build_traces_workspace(tmp_path_factory.mktemp("traces-ui") / "ws")
    yield built
    built.ws.close()


@pytest.fixture(scope="module")
def viewer(built: TracesWorkspace) -> Iterator[TestClient]:
    with TestClient(create_app(built.ws), base_url="http://127.0.0.1", follow_redirects=False,
                    cookies={SESSION_COOKIE: built.tokens["viewer"]}) as client:
        yield client




def _cell(section: str, css: str) -> str:
    start = section.index(f'class="{css}"')
    return section[start:section.index("</td>", start)]


def test_a_fallback_trace_shows_the_route_the_reason_the_serving_version_and_its_training(built, viewer) -> None:
    page = _get(viewer, "/traces/req-fallback")
    assert '<code class="request-id">req-fallback</code>' in page and "fallback-badge" in page
    answer = _section(page, "answer")
    assert 'href="/deployments/price"' in answer and 'href="/deployments/price#v1">v1<' in answer
    assert f'href="/models/price-raw/versions/1">{built.raw}<' in _cell(answer, "chosen")
    assert f'href="/models/toy/versions/1">{built.good}<' in _cell(answer, "served-by")
    assert REASON in _cell(answer, "fallback") and "fallback-reason" in answer
    assert "ms" in _cell(answer, "latency")
    trace = built.ws.monitors.trace("req-fallback")
    assert f'href="/data/predictions/versions/{trace["log"]["version"]}"' in answer
    model = _section(page, "model")
    run = built.ws.models.version(built.good).run_id
    assert f'href="/runs/{run}"' in model and "split:toy" in _cell(model, "trained-on")
    assert re.search(r'href="/lineage\?ref=table%3Atoy%40\d+"', model)  # the data it was trained on, upstream
    rows = _section(page, "request")
    assert re.findall(r'<tr data-row="(\d+)"', rows) == ["0"]
    assert "<td>1.125</td><td>2.75</td><td>c</td>" in rows
    assert re.search(r'<td class="num answer">[\d.]+</td>', rows)  # toy/1's answer beside the row
    feedback = _section(page, "feedback")
    assert "label" in feedback and "[12.5]" in feedback
    assert "No shadow answered" in _section(page, "shadows")


def test_a_trace_the_primary_answered_has_no_fallback_and_shows_every_row_escaped(built, viewer) -> None:
    page = _get(viewer, "/traces/req-ok")
    answer = _section(page, "answer")
    assert f'href="/models/price-raw/versions/1">{built.raw}<' in _cell(answer, "served-by")
    assert "none: the chosen model answered" in _cell(answer, "fallback") and "fallback-badge" not in page
    rows = _section(page, "request")
    assert re.findall(r'<tr data-row="(\d+)"', rows) == ["0", "1"]
    assert "<td>4.25</td><td>-0.5</td><td>b</td>" in rows
    assert f"<td>{escape(MARKUP)}</td>" in rows and MARKUP not in page
    answers = re.findall(r'<td class="num answer">([\d.]+)</td>', rows)
    assert [float(a) for a in answers] == [3 * 4.25 + 5, 3 * 7.5 + 5]  # RaisingModel: 3 * x1 + 5
    assert "No label or outcome recorded" in _section(page, "feedback")


def test_the_lookup_form_redirects_to_the_trace_and_the_monitors_page_offers_it(viewer) -> None:
    empty = _get(viewer, "/traces")
    assert '<form method="get" action="/traces"' in empty and 'name="request_id"' in empty
    response = viewer.get("/traces?request_id=+req-ok+", headers=HTML)
    assert response.status_code == 303 and response.headers["location"] == "/traces/req-ok"
    odd = viewer.get("/traces?request_id=a/b c'd", headers=HTML)
    assert odd.headers["location"] == "/traces/a%2Fb%20c%27d"
    missing = viewer.get(odd.headers["location"], headers=HTML)
    assert missing.status_code == 404 and "a/b c&#39;d" in missing.text  # the whole id reached the service
    monitors = _get(viewer, "/monitors")
    assert '<form method="get" action="/traces" class="filters trace-lookup">' in monitors


def test_looked_up_features_and_shadows_are_shown(viewer, monkeypatch: pytest.MonkeyPatch) -> None:
    """The data plane logs what it looked up for an entities request and the shadows' answers; the page shows
    them (the service's dict is faked here: a feature store is the features tests' business)."""
    story = {"request_id": "r1", "at": "2024-05-01T12:00:00+00:00", "deployment": "price", "request": [{"host": 7}],
             "features": {"columns": {"host_rating": {"feature": "hosts:rating", "version": 3, "values": [4.5],
                                                      "statuses": ["present"], "event_timestamps": [None]},
                                      "host_age": {"feature": "hosts:age", "version": 3, "values": [None],
                                                   "statuses": ["missing"], "event_timestamps": [None]}},
                          "incomplete": [0], "training_sets": {"price/2": "trainingset:price_ts@1"}},
             "route": {"arm": "primary", "model": "price/2", "served_by": "price/2", "fallback": None},
             "output": [101.5], "latency_ms": 2.5, "status": "ok",
             "model": {"version": "price/2", "note": "this version is no longer in the registry"},
             "deployment_version": None,
             "shadows": [{"model": "price/3", "output": [99.0], "latency_ms": 4.0, "status": "ok",
                          "at": "2024-05-01T12:00:01+00:00"}],
             "feedback": [], "log": {"table": "predictions", "version": 4, "rows": 2}}
    monkeypatch.setattr(MonitorService, "trace", lambda self, request_id: story)
    page = _get(viewer, "/traces/r1")
    features = _section(page, "features")
    assert '<tr data-column="host_rating">' in features and 'href="/features/hosts">hosts:rating<' in features
    assert "v3" in features and "4.5" in features and 'badge feature-present' in features
    assert 'badge feature-missing">missing<' in features and "Row(s) 0 had a feature missing" in features
    assert 'href="/data/price_ts/versions/1">trainingset:price_ts@1<' in features
    shadows = _section(page, "shadows")
    assert '<tr data-model="price/3">' in shadows and "[99.0]" in shadows and "4 ms" in shadows
    assert "no longer in the registry" in _section(page, "model")


def test_the_incidents_list_shows_each_incident(built, viewer) -> None:
    page = _get(viewer, "/incidents")
    assert 'href="/incidents" class="active"' in page  # the nav link, marked current
    assert re.findall(r'<tr data-incident="(\d+)"', page) == [str(built.incident)]
    row = page[page.index("<tr data-incident"):]
    row = row[:row.index("</tr>")]
    assert 'href="/incidents/1">prices fell back to toy/1<' in row and 'href="/deployments/price"' in row
    assert 'class="badge severity severity-high">high<' in row and "admin-user" in row
    assert _get(viewer, "/incidents?deployment=other").count("<tr data-incident") == 0


def test_an_incident_shows_its_notes_and_its_stored_timeline(built, viewer) -> None:
    page = _get(viewer, f"/incidents/{built.incident}")
    assert '<span class="incident-title">prices fell back to toy/1</span>' in page
    assert 'severity-high">high<' in page and 'href="/deployments/price"' in page
    notes = _section(page, "notes")
    assert re.findall(r'<p class="note-text">(.*?)</p>', notes) == [
        f"paged at 14:02 {escape(MARKUP)}", "root cause: the primary cannot handle x2 above 1.5"]
    timeline = _section(page, "timeline")
    stored = built.ws.incidents.get(built.incident).timeline["events"]
    assert re.findall(r'data-kind="([a-z]+)"', timeline) == [e["kind"] for e in stored]
    assert {"deployment", "registry", "data", "alert"} <= {e["kind"] for e in stored}
    assert '<tr class="event event-deployment" data-kind="deployment">' in timeline
    assert 'href="/deployments/price#v1">deployment:price@1<' in timeline
    assert "create by admin-user" in timeline and "first release" in timeline
    assert f'href="/models/toy/versions/1">model:{built.good}<' in timeline  # its registration
    assert 'href="/monitors/watch">monitor:watch<' in timeline and "firing: rows &lt; 1" in timeline
    assert 'href="/monitors/watch?report=1">monitor_report:watch/1<' in timeline
    assert re.search(r'<tr class="event event-data upstream" data-kind="data">', timeline)  # the toy table
    assert 'href="/lineage?ref=incident%3A1"' in page
    live = re.search(r'class="live-timeline" href="([^"]+)"', page).group(1)
    assert live.startswith("/incidents/timeline?deployment=price&amp;from=")


def test_the_live_timeline_reads_a_range_now(built, viewer) -> None:
    form = _get(viewer, "/incidents/timeline")
    assert '<form method="get" action="/incidents/timeline"' in form and '<option value="price"' in form
    assert 'id="timeline"' not in form
    start = (built.started - timedelta(seconds=1)).isoformat()
    page = _get(viewer, f"/incidents/timeline?deployment=price&from={start.replace('+', '%2B')}")
    timeline = _section(page, "timeline")
    assert 'href="/deployments/price#v1">deployment:price@1<' in timeline
    assert "firing: rows &lt; 1" in timeline
    assert "2 request(s)" in timeline and "50.0% answered by a fallback" in timeline
    assert 'id="notes"' not in page and "Timeline of" in page
    empty = _get(viewer, "/incidents/timeline?deployment=price&from=2020-01-01T00:00Z&to=2020-01-02T00:00Z")
    assert "Nothing happened to this deployment in this range." in empty


@pytest.mark.parametrize("path, status, message", [
    ("/traces/nope", 404, "no prediction with request id"),
    ("/traces/" + "x" * 300, 400, "a request id has 1 to 256 characters"),
    ("/traces?request_id=" + "x" * 300, 400, "request_id"),
    ("/incidents/7", 404, "no incident"),
    ("/incidents/seven", 400, "incident id"),
    ("/incidents?deployment=" + "d" * 600, 400, "deployment"),
    ("/incidents/timeline?deployment=nope&from=1h", 404, "no deployment"),
    ("/incidents/timeline?deployment=price&from=soon", 400, "--from &#39;soon&#39;"),
    ("/incidents/timeline?deployment=price&from=2024-01-02T00:00Z&to=2024-01-01T00:00Z", 400, "not before"),
    ("/incidents/timeline?deployment=price", 400, "needs a deployment and a start"),
])
def test_unknown_ids_are_not_found_pages_and_bad_parameters_4xx_pages(viewer, path: str, status: int,
                                                                      message: str) -> None:
    response = viewer.get(path, headers=HTML)
    assert response.status_code == status, (path, response.text[:500])
    assert message in response.text and "Traceback" not in response.text
    assert response.headers["content-type"].startswith("text/html")
    if path.startswith("/incidents/timeline"):  # said above the form, to be corrected there
        assert 'class="error-box timeline-error"' in response.text and 'action="/incidents/timeline"' in response.text
    elif status == 404:
        assert "Not found" in response.text


def test_the_pages_obey_the_csp(built, viewer) -> None:
    for path in ("/traces", "/traces/req-ok", "/traces/req-fallback", "/incidents", f"/incidents/{built.incident}",
                 "/incidents/timeline", "/incidents/timeline?deployment=price&from=1d", "/traces/nope"):
        response = viewer.get(path, headers=HTML)
        assert "script-src 'self'" in response.headers["content-security-policy"], path
        page = response.text
        assert not re.search(r"<script(?![^>]*\bsrc=)", page), path  # no inline script
        assert "<style" not in page and not re.search(r"\sstyle=", page), path
        assert not re.search(r"\son[a-z]+=", page), path  # no inline event handler


@pytest.mark.parametrize("path", ["/traces/req-ok", "/traces?request_id=req-ok", "/incidents", "/incidents/1",
                                  "/incidents/timeline?deployment=price&from=1h"])
def test_anonymous_requests_go_to_the_login_page(built, path: str) -> None:
    with TestClient(create_app(built.ws), base_url="http://127.0.0.1", follow_redirects=False) as client:
        response = client.get(path, headers=HTML)
    assert response.status_code == 303 and response.headers["location"].startswith("/login?next=")


def test_every_kind_of_event_has_words_and_subjects_link_to_their_pages() -> None:
    assert set(KIND_WORDS) == set(KINDS)
    assert subject_url("deployment:price@2") == "/deployments/price#v2"
    assert subject_url("model:price/3") == "/models/price/versions/3"
    assert subject_url("table:toy@0") == "/data/toy/versions/0"
    assert subject_url("features:hosts@2") == "/features/hosts"
    assert subject_url("monitor:a b") == "/monitors/a%20b"
    assert subject_url("monitor_report:watch/4") == "/monitors/watch?report=4"
    assert subject_url("incident:3") == "/lineage?ref=incident%3A3"
