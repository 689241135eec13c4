"""The monitor pages: the list of monitors with the latest verdict, drifted columns and firing alerts; one
monitor's reports and a report in full (the drifted column with its distributions, drift over time, the slice
heat map, the alerts), an empty window shown as "no data"; the report as one HTML file to download; unknown
names and report numbers a 404 page; viewers may read them; everything escaped."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape, unescape

import orjson
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

import keel
from gates_helpers import FEATURES, register, toy_frame, toy_world  # tests/ is on sys.path (tests/conftest.py)
from keel.server.app import create_app
from keel.server.security import SESSION_COOKIE
from keel.serving.feedback import LOG_SCHEMA, LOG_TABLE
from keel.users import ROLES

from .ui_pages import HTML
from .ui_pages import get_page as _get
from .ui_pages import row as _row
from .ui_pages import section as _section

ODD = "<script>alert('owned')</script>"  # a category the baseline never had, and so a new slice value


@dataclass
class MonitorsWorkspace:
    ws: keel.Workspace
    tokens: dict[str, str]


def _log(ws: keel.Workspace, model: str, frame, prefix: str, batch: int = 100) -> None:
    """``frame``'s rows in the prediction log as the data plane writes them: a request per ``batch`` rows."""
    predicted = ws.models.load(model).predict(frame[FEATURES])
    now = datetime.now(UTC)
    rows = []
    for i, start in enumerate(range(0, len(frame), batch)):
        part = frame.iloc[start:start + batch]
        rows.append({"request_id": f"{prefix}-{i}", "at": now, "kind": "primary", "deployment": "price",
                     "arm": "primary", "model": model, "served_by": model, "inputs":
                     orjson.dumps(part[FEATURES].to_dict(orient="records")).decode(),
                     "output": orjson.dumps([float(v) for v in predicted[start:start + batch]]).decode(),
                     "latency_ms": 3.0, "status": "ok"})
    ws.data.write_batches([pa.Table.from_pylist(rows, schema=LOG_SCHEMA)], LOG_TABLE)


def build_monitors_workspace(path) -> MonitorsWorkspace:
    """``price-drift``: a report of a shifted window (x1 moved, a new category with markup in it), then one of
    an empty window; ``quiet``: no report yet."""
    ws = keel.init(path, user="admin-user")
    tokens = {}
    for role in ROLES:
        ws.users.add(f"{role}-user", role)
        tokens[role] = ws.tokens.create(f"{role}-user").token
    model = register(ws, toy_world(ws, n=2000), metrics={"test.rmse": 1.0})
    ws.deployments.create("price", model.name)
    ws.monitors.create("price-drift", "price", window="1h", slices=["cat"],
                       alerts=["drift(x1) > 0.1", "rows < 1"])
    ws.monitors.create("quiet", "price")
    shifted = toy_frame(1500, seed=12)  # like training but for x1 and the new category
    shifted["x1"] = shifted["x1"] + 6.0
    shifted.loc[shifted.index[:300], "cat"] = ODD
    _log(ws, model.name, shifted, "shifted")
    ws.monitors.run("price-drift")
    ws.monitors.run("price-drift", window="2020-01-01T00:00Z..2020-01-02T00:00Z")
    return MonitorsWorkspace(ws, tokens)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MonitorsWorkspace]:
    built = build_monitors_workspace(tmp_path_factory.mktemp("monitors-ui") / "ws")
    yield built
    built.ws.close()


@pytest.fixture(scope="module")
def viewer(built: MonitorsWorkspace) -> Iterator[TestClient]:
    with TestClient(create_app(built.ws), base_url="http://127.0.0.1", follow_redirects=False,
                    cookies={SESSION_COOKIE: built.tokens["viewer"]}) as client:
        yield client





def test_the_list_shows_each_monitor_with_its_latest_verdict_and_firing_alerts(viewer) -> None:
    page = _get(viewer, "/monitors")
    assert 'href="/monitors" class="active"' in page  # the nav link, marked current
    assert re.findall(r'<tr data-monitor="([^"]+)"', page) == ["price-drift", "quiet"]
    latest = _row(page, "data-monitor", "price-drift")
    assert 'href="/monitors/price-drift"' in latest and 'href="/deployments/price"' in latest
    assert 'class="badge verdict status-skipped">no data<' in latest  # the latest window was empty
    assert "firing-rule\">rows &lt; 1<" in latest and "(0 rows)" in latest
    quiet = _row(page, "data-monitor", "quiet")
    assert ">no report yet<" in quiet and "firing-rule" not in quiet


def test_a_drifted_report_shows_the_drifted_column_its_plots_and_the_slices(built, viewer) -> None:
    page = _get(viewer, "/monitors/price-drift?report=1")
    assert 'class="badge gate-verdict verdict status-failed">drift<' in page
    assert re.findall(r'<tr data-report="(\d+)"', _section(page, "reports")) == ["2", "1"]
    assert 'data-report="1" class="current"' in page
    listed = _row(page, "data-report", "1")
    assert "<code>x1</code>" in listed and "<code>prediction</code>" in listed
    features = _section(page, "features")
    assert '<tr class="column drifted" data-column="x1">' in features
    assert '<tr class="column ok" data-column="x2">' in features
    assert f'<span class="badge warn new-category">{escape(ODD)}</span>' in features
    for column in ("x1", "x2", "cat"):
        assert f'<svg class="monitor-plot distribution" data-column="{column}"' in features, column
        assert f'<svg class="monitor-plot drift" data-column="{column}"' in _section(page, "drift-over-time")
    heat = _section(page, "slices")
    assert re.search(r'<g class="cell drifted" data-slice="cat=a" data-column="x1">', heat)
    assert f'data-slice="cat={escape(ODD)}"' in heat and "new value: not in the baseline" in heat
    alerts = _section(page, "alerts")
    assert "drift(x1) &gt; 0.1" in alerts and "firing" in alerts
    assert 'href="/monitors/price-drift/report.html?report=1" download' in page
    assert built.ws.monitors.report("price-drift", 1).drifted_columns()[0] == "x1"


def test_the_latest_report_of_an_empty_window_says_no_data(viewer) -> None:
    page = _get(viewer, "/monitors/price-drift")
    assert 'class="badge gate-verdict verdict status-skipped">no data<' in page
    features = _section(page, "features")
    assert "no data" in features and "no drift" not in features and "not a window without drift" in features
    assert "<title>#2: no data" in _section(page, "drift-over-time")


def test_a_monitor_without_reports_says_how_to_make_one(viewer) -> None:
    page = _get(viewer, "/monitors/quiet")
    assert "keel monitor run quiet" in page and "no report yet" in page and "report.html" not in page


def test_the_pages_obey_the_csp_and_escape_every_value(viewer) -> None:
    for path in ("/monitors", "/monitors/price-drift?report=1"):
        response = viewer.get(path, headers=HTML)
        assert "script-src 'self'" in response.headers["content-security-policy"]
        page = response.text
        assert "<script>alert(" not in page, path
        assert not re.search(r"<svg.*?style=.*?</svg>", page, re.S) and "<style" not in page, path
    assert escape(ODD) in page and ODD in unescape(page)


def test_the_report_downloads_as_one_html_file(viewer) -> None:
    response = viewer.get("/monitors/price-drift/report.html?report=1")
    assert response.status_code == 200
    assert response.headers["content-disposition"] == 'attachment; filename="monitor-price-drift-1.html"'
    assert "sandbox" in response.headers["content-security-policy"]
    assert response.text.startswith("<!doctype html>") and "<script" not in response.text
    assert 'data-column="x1"' in response.text


@pytest.mark.parametrize("path, message", [("/monitors/nope", "no monitor &#39;nope&#39;"),
                                           ("/monitors/price-drift?report=9", "has no report 9")])
def test_an_unknown_monitor_or_report_is_a_not_found_page(viewer, path: str, message: str) -> None:
    response = viewer.get(path, headers=HTML)
    assert response.status_code == 404 and message in response.text
    assert "Not found" in response.text and "Traceback" not in response.text
    assert viewer.get(path).json()["error"]["type"] == "NotFound"


def test_anonymous_requests_go_to_the_login_page(built) -> None:
    with TestClient(create_app(built.ws), base_url="http://127.0.0.1", follow_redirects=False) as client:
        response = client.get("/monitors/price-drift", headers=HTML)
    assert response.status_code == 303 and response.headers["location"].startswith("/login?next=")
