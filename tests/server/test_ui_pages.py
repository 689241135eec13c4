"""What the pages show: runs (filter, sort, step charts, artifacts), comparisons, models with the approve and
promote flow, data (quarantine, contract, profile histograms), lineage, audit; errors as friendly pages;
everything escaped; no script from anywhere but the server."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html import unescape
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from keel.server.app import create_app
from keel.server.security import SESSION_COOKIE, csrf_token
from keel.ui.charts import lineage_graph, parallel_coordinates, quantile_histogram

from .ui_fixture import UIWorkspace, build_ui_workspace

HTML = {"accept": "text/html"}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UIWorkspace]:
    built = build_ui_workspace(tmp_path_factory.mktemp("ui") / "ws")
    yield built
    built.ws.close()


def _client(built: UIWorkspace, role: str = "viewer", **options) -> TestClient:
    return TestClient(create_app(built.ws), base_url="http://127.0.0.1", follow_redirects=False,
                      cookies={SESSION_COOKIE: built.tokens[role]}, **options)


@pytest.fixture(scope="module")
def viewer(built: UIWorkspace) -> TestClient:
    return _client(built)


def _pages(built: UIWorkspace) -> list[str]:
    a, b = built.runs["baseline"], built.runs["ridge"]
    return ["/", "/runs", f"/runs/{a}", f"/runs/compare?ids={a}&ids={b}", "/models", "/models/price",
            "/models/price/versions/1", "/models/price/versions/latest", "/data", "/data/listings",
            "/data/listings/versions/0", "/data/listings__quarantine", f"/lineage?ref={built.split}", "/lineage",
            "/audit"]


def test_every_page_renders_and_loads_scripts_only_from_the_server(built: UIWorkspace, viewer: TestClient) -> None:
    for path in _pages(built):
        response = viewer.get(path, headers=HTML)
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/html"), path
        assert not re.search(r'(src|href)="(https?:)?//', response.text), path  # no CDN, no other origin
        assert "Traceback" not in response.text
    assert viewer.get("/static/uPlot.iife.min.js").status_code == 200
    assert "MIT" in viewer.get("/static/uPlot.LICENSE").text


def test_run_list_filters_and_sorts_with_the_api_language(built: UIWorkspace, viewer: TestClient) -> None:
    page = viewer.get("/runs", params={"filter": "params.model = 'ridge'"}).text
    assert f"/runs/{built.runs['ridge']}" in page and f"/runs/{built.runs['baseline']}" not in page
    ordered = viewer.get("/runs", params={"sort": "-metrics.validation.rmse"}).text
    first, second = (ordered.index(f'href="/runs/{built.runs[name]}"') for name in ("baseline", "ridge"))
    assert first < second  # the dummy's rmse is the larger
    bad = viewer.get("/runs", params={"filter": "metrics.rmse <"})
    assert bad.status_code == 200 and 'class="error-box"' in bad.text and "invalid filter" in bad.text


def test_run_page_shows_step_charts_artifacts_and_lineage(built: UIWorkspace, viewer: TestClient) -> None:
    run_id = built.runs["ridge"]
    page = viewer.get(f"/runs/{run_id}").text
    data = re.search(r'<script type="application/json" id="metric-histories">(.*?)</script>', page, re.S).group(1)
    import json

    histories = json.loads(data)
    assert histories["loss"][0] == list(range(12)) and len(histories["lr"][1]) == 12
    assert "validation.rmse" not in histories  # one point: a number in the table, not a chart
    assert f'<img src="/runs/{run_id}/files/curves/loss.png"' in page
    assert "split:listings-split@1" in page and "model:price/2" in page  # lineage both ways
    image = viewer.get(f"/runs/{run_id}/files/curves/loss.png")
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert image.content.startswith(b"\x89PNG")
    text = viewer.get(f"/runs/{run_id}/files/notes/summary.json")
    assert text.headers["content-type"].startswith("text/plain") and text.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in text.headers["content-security-policy"]


@pytest.mark.parametrize("name", ["nope.png", "../../../keel.toml", "..%2F..%2Fkeel.toml", "curves/../../x.png"])
def test_run_files_serve_only_the_runs_own_artifacts(built: UIWorkspace, viewer: TestClient, name: str) -> None:
    response = viewer.get(f"/runs/{built.runs['ridge']}/files/{name}")
    assert response.status_code == 404


def test_compare_highlights_differing_params_and_draws_the_metrics(built: UIWorkspace, viewer: TestClient) -> None:
    a, b = built.runs["baseline"], built.runs["ridge"]
    page = viewer.get("/runs/compare", params={"ids": [a, b]}).text
    differing = re.findall(r'<tr class="diff"><th>([^<]+)</th>', page)
    assert "model" in differing and "alpha" in differing and "features" not in differing
    assert page.count('<g class="run-line">') == 2 and "<polyline" in page
    assert 'id="overlay-histories"' in page  # the training curves of both runs, overlaid
    chosen = viewer.get("/runs/compare", params={"ids": [a, b], "metrics": ["validation.mae"]}).text
    assert chosen.count('class="axis-label"') == 1
    for ids in ([a], [a] * 2, [f"run{i}" for i in range(11)]):
        refused = viewer.get("/runs/compare", params={"ids": ids}, headers=HTML)
        assert refused.status_code == 400 and "compare 2 to 10 runs" in refused.text


def test_version_page_forms_follow_the_role(built: UIWorkspace) -> None:
    viewer = _client(built).get("/models/price/versions/1").text
    approver = _client(built, "approver").get("/models/price/versions/1").text
    assert viewer.count("<fieldset disabled>") == 2
    assert "<fieldset disabled>" not in approver
    developer = _client(built, "developer").get("/models/price/versions/1").text
    assert developer.count("<fieldset disabled>") == 1 and "<option disabled>production</option>" in developer
    assert "table:listings@0" in viewer and f"run:{built.runs['baseline']}" in viewer  # data → run → model


def test_approve_then_promote_through_the_forms_is_audited(tmp_path: Path) -> None:
    built = build_ui_workspace(tmp_path / "ws")
    try:
        client = _client(built, "approver", raise_server_exceptions=False)
        csrf = {"csrf_token": csrf_token(built.tokens["approver"])}
        early = client.post("/models/price/versions/2/promote", headers=HTML,
                            data={**csrf, "environment": "production", "reason": "too soon"})
        assert early.status_code == 403 and "has no approval for production" in unescape(early.text)
        assert "<!doctype html>" in early.text  # a page, not JSON, for a browser
        approved = client.post("/models/price/versions/2/approve",
                               data={**csrf, "environment": "production", "reason": "beats the baseline"})
        assert approved.status_code == 303
        assert approved.headers["location"] == "/models/price/versions/2?done=approved"
        assert "Approved." in client.get(approved.headers["location"]).text
        promoted = client.post("/models/price/versions/2/promote",
                               data={**csrf, "environment": "production", "reason": "approved"})
        assert promoted.status_code == 303
        assert built.ws.models.get("price").aliases["production"] == 2
        audit = {e.action: e for e in built.ws.audit.list(target="model:price/2")}
        assert audit["model.approve"].actor == "approver-user" and audit["model.approve"].reason == "beats the baseline"
        assert audit["model.promote"].actor == "approver-user"
        page = client.get("/audit", params={"target": "model:price/2"}).text
        assert "model.approve" in page and "model.promote" in page and "approver-user" in page
        empty = client.post("/models/price/versions/1/approve", headers=HTML, data={**csrf, "reason": "  "})
        assert empty.status_code == 400 and "needs a reason" in empty.text
    finally:
        built.ws.close()


def test_data_pages_show_quarantine_contract_and_histograms(built: UIWorkspace, viewer: TestClient) -> None:
    tables = viewer.get("/data").text
    assert "/data/listings\"" in tables and "/data/listings__quarantine\"" not in tables
    quarantined = built.ws.data.version("listings__quarantine").row_count
    assert quarantined > 0 and f'<span class="badge warn">{quarantined}</span>' in tables
    table = viewer.get("/data/listings").text
    assert 'id="contract"' in table and "Entire home/apt" in table  # the allowed room types
    reasons = re.findall(r"<tr><td><code>([^<]+)</code></td><td class=\"num\">(\d+)</td></tr>", table)
    assert reasons and sum(int(n) for _, n in reasons) == quarantined
    profile = viewer.get("/data/listings/versions/0").text
    assert profile.count('<svg class="histogram"') >= 5 and "<progress" in profile  # numbers and categories


def test_lineage_page_draws_any_ref_and_explains_unknown_ones(built: UIWorkspace, viewer: TestClient) -> None:
    page = viewer.get("/lineage", params={"ref": "price@latest"}).text
    assert "model:price/2" in page and f"run:{built.runs['ridge']}" in page and "table:listings@0" in page
    assert '<svg class="lineage' in page
    unknown = viewer.get("/lineage", params={"ref": "nothing-here"}, headers=HTML)
    assert unknown.status_code == 404 and "nothing is named" in unescape(unknown.text)


def test_errors_are_pages_for_browsers_and_json_for_the_rest(built: UIWorkspace, viewer: TestClient) -> None:
    page = viewer.get("/runs/0123456789", headers=HTML)
    assert page.status_code == 404 and "<!doctype html>" in page.text and "unknown run" in unescape(page.text)
    data = viewer.get("/runs/0123456789")
    assert data.status_code == 404 and data.json()["error"]["type"] == "NotFound"
    missing = viewer.get("/no/such/page", headers=HTML)
    assert missing.status_code == 404 and "Not found" in missing.text
    api = viewer.get("/api/v1/runs/0123456789", headers=HTML)
    assert api.json()["error"]["type"] == "NotFound"  # the API keeps its JSON, whatever the Accept


def test_an_unexpected_failure_is_a_page_without_a_traceback(built: UIWorkspace, monkeypatch) -> None:
    from keel.tracking.service import RunService

    def boom(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(RunService, "list", boom)
    response = _client(built, raise_server_exceptions=False).get("/runs", headers=HTML)
    assert response.status_code == 500 and "Something went wrong" in response.text
    assert "secret internals" not in response.text and "Traceback" not in response.text


def test_everything_shown_is_escaped(built: UIWorkspace, viewer: TestClient) -> None:
    with built.ws.runs.start("price", name="<b>bold</b>", tags={"note": "<script>alert(1)</script>"}) as run:
        run.log_params({"<img src=x onerror=alert(1)>": "\"'><svg onload=alert(1)>"})
    for path in (f"/runs/{run.id}", "/runs", f"/runs/compare?ids={run.id}&ids={built.runs['ridge']}"):
        page = viewer.get(path).text
        assert "<b>bold</b>" not in page and "<script>alert" not in page and "<img src=x" not in page
        assert "<svg onload" not in page
    assert "&lt;b&gt;bold&lt;/b&gt;" in viewer.get(f"/runs/{run.id}").text


def test_chart_geometry() -> None:
    even = quantile_histogram({"min": 0.0, "max": 100.0, "quantiles": {"0.05": 5.0, "0.25": 25.0, "0.5": 50.0,
                                                                      "0.75": 75.0, "0.95": 95.0}}, width=100)
    assert len(even["bars"]) == 6 and len({b["h"] for b in even["bars"]}) == 1  # uniform: one height
    assert sum(b["w"] for b in even["bars"]) == pytest.approx(100)
    discrete = quantile_histogram({"min": 1, "max": 4, "quantiles": {"0.05": 1, "0.25": 2, "0.5": 2, "0.75": 2,
                                                                    "0.95": 4}})
    assert len(discrete["bars"]) == 2  # tied cut points join the next bar
    assert quantile_histogram({"min": 3, "max": 3, "quantiles": {"0.5": 3}})["constant"] == 3
    assert quantile_histogram({"min": None, "max": None}) is None
    chart = parallel_coordinates(["a", "b"], ["1", "2"], {"rmse": [1.0, 2.0], "mae": [None, 1.0], "r2": [0.5, 0.5]})
    assert [ax["key"] for ax in chart["axes"]] == ["rmse", "mae", "r2"]
    a, b = chart["lines"]
    assert a["dots"][0]["y"] > b["dots"][0]["y"]  # lower rmse sits lower on its axis
    assert len(a["dots"]) == 2 and len(b["dots"]) == 3  # a missing value is no dot and breaks the line

    from keel.lineage import LineageNode

    up = LineageNode("model:m/1", None, [LineageNode("run:r", "produced", [LineageNode("table:t@1", "input_of", [
        LineageNode("table:t@0", "next_version"), LineageNode("file:f@sha256:00", "ingested_from")]),
        LineageNode("table:t@0", "input_of")])])
    graph = lineage_graph("model:m/1", up, LineageNode("model:m/1"))
    x = {n["ref"]: n["x"] for n in graph["nodes"]}
    assert x["table:t@0"] < x["table:t@1"] < x["run:r"] < x["model:m/1"]  # every arrow points right
    assert len(graph["nodes"]) == 5 and len(graph["arrows"]) == 5
