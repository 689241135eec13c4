"""A monitor's reports as one HTML file: the verdict, each column's distributions as inline SVG, drift over
time, the slice heat map, performance against training, the alerts; an empty window said to be "no data"
(never "no drift"); nothing fetched, no script, and every value escaped."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from html import escape
from typing import Any

import pytest

from keel.monitoring.html import firing, render_monitor_report, report_body, verdict
from keel.monitoring.model import AlertEvent, DriftReport, Monitor
from keel.monitoring.plots import distribution, fmt, heat_map, score

EVIL = "<script>alert('x')</script>"
T0 = datetime(2024, 5, 1, tzinfo=UTC)
RULES = ["drift(x1) > 0.1 for 2 windows", "rows < 1", "rmse > 1.2 x training"]


def _numeric(name: str, statistic: float, *, drifted: bool, method: str = "wasserstein", p_value: float | None = None,
             threshold: float = 0.1, shift: float = 0.0) -> dict[str, Any]:
    ref = [0.1, 0.2, 0.4, 0.2, 0.1, 0.0]
    cur = [max(0.0, r - shift) for r in ref[:3]] + [r + shift for r in ref[3:]]
    return {"column": name, "kind": "numeric", "method": method, "statistic": statistic, "p_value": p_value,
            "threshold": threshold, "drifted": drifted, "reference_rows": 2800, "current_rows": 1500,
            "reference_missing_rate": 0.0, "current_missing_rate": 0.02, "missing_rate_change": 0.02,
            "new_categories": [], "no_data": False, "reason": None,
            "histogram": {"reference": ref, "current": cur, "edges": [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
                          "categories": None}}


def _categorical(statistic: float, *, drifted: bool, new: bool) -> dict[str, Any]:
    categories = ["a", "b", EVIL, *(["d"] if new else [])]
    ref = [0.4, 0.3, 0.3, 0.0] if new else [0.4, 0.3, 0.3]
    cur = [0.3, 0.3, 0.2, 0.2] if new else [0.35, 0.35, 0.3]
    return {"column": "cat", "kind": "categorical", "method": "jensenshannon", "statistic": statistic, "p_value": None,
            "threshold": 0.1, "drifted": drifted, "reference_rows": 2800, "current_rows": 1500,
            "reference_missing_rate": 0.0, "current_missing_rate": 0.0, "missing_rate_change": 0.0,
            "new_categories": ["d"] if new else [], "no_data": False, "reason": None,
            "histogram": {"reference": ref, "current": cur, "edges": None, "categories": categories}}


def _dataset(columns: list[dict[str, Any]], rows: int, share: float = 0.5) -> dict[str, Any]:
    drifted = sum(c["drifted"] for c in columns)
    return {"rows": rows, "reference_rows": 2800, "missing_columns": [], "number_of_columns": len(columns),
            "number_of_drifted_columns": drifted, "share_of_drifted_columns": drifted / len(columns), "share": share,
            "drifted": drifted / len(columns) >= share, "no_data": False, "reason": None, "columns": columns}


def _empty(share: float = 0.5) -> dict[str, Any]:
    return {"rows": 0, "reference_rows": 2800, "missing_columns": [], "number_of_columns": 0,
            "number_of_drifted_columns": 0, "share_of_drifted_columns": None, "share": share, "drifted": False,
            "no_data": True, "reason": "the current window is empty", "columns": []}


def _slice_cell(name: str, p: float, *, drifted: bool) -> dict[str, Any]:
    return {**_numeric(name, 0.3 if drifted else 0.03, drifted=drifted, method="ks", p_value=p, threshold=0.05)}


def _performance(rmse: float | None) -> dict[str, Any]:
    if rmse is None:
        return {"status": "no_labels", "rows": 0, "metrics": {}, "training": {"rmse": 1.0}, "slices": {},
                "unmatched_labels": 0}
    return {"status": "ok", "rows": 300, "task": "regression", "training": {"rmse": 1.0},
            "metrics": {"rmse": rmse, "mae": rmse * 0.8},
            "change": {"rmse": {"training": 1.0, "window": rmse, "ratio": rmse, "worse": rmse > 1.0}},
            "slices": {"cat": [{"value": "a", "rows": 150, "rmse": rmse * 0.9, "mae": 0.7},
                               {"value": EVIL, "rows": 150, "rmse": rmse * 1.1, "mae": 0.9}]},
            "unmatched_labels": 2}


def _report(number: int, results: dict[str, Any], *, status: str = "ok", rows: int = 1500) -> DriftReport:
    drifted = status == "ok" and (results["overall"]["drifted"] or results["prediction"]["drifted"])
    start = T0 + timedelta(hours=number)
    return DriftReport("price-drift", number, start, start + timedelta(hours=1), status, drifted, rows, "price/3", 2,
                       7 + number, "sketch0123", results, 0.25, start + timedelta(hours=1, minutes=1), "dev")


def _alerts(*states: tuple[bool, bool]) -> list[dict[str, Any]]:
    return [{"rule": rule, "value": 1.5 if holds else 0.0, "holds": holds, "firing": fires}
            for rule, (holds, fires) in zip(RULES, states, strict=True)]


def _reports() -> list[DriftReport]:
    """#1 like training, #2 shifted (x1, the evil column, a new category, a new slice value, the prediction),
    #3 an empty window."""
    calm = _report(1, {
        "overall": _dataset([_numeric("x1", 0.02, drifted=False), _numeric("x2", 0.03, drifted=False),
                             _categorical(0.01, drifted=False, new=False), _numeric(EVIL, 0.01, drifted=False)], 1500),
        "prediction": _dataset([_numeric("prediction", 0.02, drifted=False)], 1500, share=1.0),
        "slices": {"cat": {"a": _dataset([_slice_cell("x1", 0.6, drifted=False),
                                          _slice_cell("x2", 0.4, drifted=False)], 700)}},
        "performance": _performance(None), "alerts": _alerts((False, False), (False, False), (False, False)),
        "notes": []})
    shifted = _report(2, {
        "overall": _dataset([_numeric("x1", 1.04, drifted=True, shift=0.08), _numeric("x2", 0.02, drifted=False),
                             _categorical(0.19, drifted=True, new=True),
                             _numeric(EVIL, 0.5, drifted=True, shift=0.05)], 1500),
        "prediction": _dataset([_numeric("prediction", 0.95, drifted=True, shift=0.1)], 1500, share=1.0),
        "slices": {"cat": {"a": _dataset([_slice_cell("x1", 1e-9, drifted=True),
                                          _slice_cell("x2", 0.4, drifted=False)], 700),
                           EVIL: _dataset([_slice_cell("x1", 0.01, drifted=True),
                                           _slice_cell("x2", 0.9, drifted=False)], 500),
                           "d": {"status": "new_value", "rows": 300, "drifted": True}}},
        "performance": _performance(1.5), "alerts": _alerts((True, False), (False, False), (True, True)),
        "notes": [f"the baseline's {EVIL} column is constant"]})
    empty = _report(3, {"overall": _empty(), "prediction": _empty(1.0), "slices": {},
                        "performance": {"status": "no_labels", "rows": 0, "metrics": {}, "training": {"rmse": 1.0},
                                        "slices": {}, "unmatched_labels": 0},
                        "alerts": _alerts((False, False), (True, True), (False, False)), "notes": []},
                    status="no_data", rows=0)
    return [empty, shifted, calm]  # the service's order: newest first


MONITOR = Monitor("price-drift", "price", "training", "1h", ["cat"], {}, {}, 0.5, RULES,
                  "https://hooks.example.com/secret-token", 3, T0, "dev")
EVENTS = [AlertEvent("e3", "price-drift", 3, "rows < 1", "firing", 0.0, "sent", T0 + timedelta(hours=4)),
          AlertEvent("e2", "price-drift", 2, "rmse > 1.2 x training", "firing", 1.5, f"failed: {EVIL}",
                     T0 + timedelta(hours=3))]


def _section(html: str, id_: str) -> str:
    start = html.index(f'id="{id_}"')
    return html[start:html.index("</section>", start)]


def _svgs(html: str, kind: str) -> dict[str, str]:
    """The SVGs of one kind by their column (the escaped name, as in the attribute)."""
    found = re.findall(rf'<svg class="monitor-plot {kind}"(?: data-column="([^"]*)")?.*?</svg>', html, re.S)
    svgs = re.findall(rf'<svg class="monitor-plot {kind}".*?</svg>', html, re.S)
    return dict(zip(found, svgs, strict=True))


@pytest.fixture(scope="module")
def latest() -> str:
    return render_monitor_report(MONITOR, _reports(), EVENTS)


@pytest.fixture(scope="module")
def drifted() -> str:
    return render_monitor_report(MONITOR, _reports(), EVENTS, number=2)


def test_the_page_is_self_contained_runs_nothing_and_fetches_nothing(latest: str, drifted: str) -> None:
    for html in (latest, drifted):
        assert html.startswith("<!doctype html>") and html.count("<html") == 1
        csp = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', html)
        assert csp and "default-src 'none'" in csp.group(1) and "script-src" not in csp.group(1)
        assert "<script" not in html.lower()
        assert "http://" not in html and "https://" not in html  # no resource, and the webhook URL is not shown
        assert "secret-token" not in html
        assert not re.search(r"<(link|img|iframe|object|embed)\b", html) and " src=" not in html
        assert not re.search(r"<svg.*?style=.*?</svg>", html, re.S)  # the plots obey the UI's CSP too
        for svg in re.findall(r"<svg\b.*?</svg>", html, re.S):
            ET.fromstring(svg)  # well-formed: every value placed in it is escaped


def test_every_string_from_the_data_is_escaped(drifted: str) -> None:
    assert EVIL not in drifted
    assert escape(EVIL) in drifted  # the column, the category, the slice value, the note, the webhook failure
    assert f'data-column="{escape(EVIL)}"' in drifted
    assert "alert(" not in drifted.replace(escape(EVIL), "").replace(escape(EVIL, quote=False), "")
    assert f"failed: {escape(EVIL)}" in drifted and f"the baseline&#x27;s {escape(EVIL)} column" in drifted


def test_the_header_says_the_verdict_the_monitor_and_the_window(drifted: str) -> None:
    summary = _section(drifted, "summary")
    assert '<h1>Monitor <code>price-drift</code> <span class="badge verdict status-failed">drift</span></h1>' in drifted
    for shown in ("monitor:price-drift", "price (policy v2)", "training", "sketch0123", "1h", "price/3", "1,500",
                  "2024-05-01 02:00:00 UTC → 2024-05-01 03:00:00 UTC", "3 of 4 column(s) drifted (75%",
                  "the data drifts at 50%", "the prediction drifted", "#2 (the newest is #3)",
                  "events are POSTed to a webhook", "version 9"):
        assert shown in summary, shown


def test_each_column_has_its_numbers_verdict_and_distributions(drifted: str) -> None:
    features = _section(drifted, "features")
    rows = dict(re.findall(r'<tr class="column (\w+(?:-\w+)?)" data-column="([^"]*)"', features)[i][::-1]
                for i in range(4))
    assert rows == {"x1": "drifted", "x2": "ok", "cat": "drifted", escape(EVIL): "drifted"}
    x1 = features[features.index('data-column="x1"'):features.index('data-column="x2"')]
    assert ">1.04<" in x1 and "≥ 0.1" in x1 and "wasserstein" in x1 and ">drifted</span>" in x1
    assert "0% → 2% <span" in x1 and "(+2 pt)" in x1
    assert '<span class="badge warn new-category">d</span>' in features
    svgs = _svgs(features, "distribution")
    assert set(svgs) == {"x1", "x2", "cat", escape(EVIL)}
    assert len(re.findall(r'<g class="bin">', svgs["x1"])) == 6  # a pair of bars per bin
    assert len(re.findall(r"<rect ", svgs["x1"])) == 2 * 6 + 2  # and the legend's two swatches
    assert 'class="category new"' in svgs["cat"] and "d (new)" in svgs["cat"]
    assert escape(EVIL)[:12] in svgs["cat"]  # the category's label, escaped (and shortened)
    prediction = _section(drifted, "prediction")
    assert set(_svgs(prediction, "distribution")) == {"prediction"} and 'class="column drifted"' in prediction


def test_an_empty_window_says_no_data_never_no_drift(latest: str) -> None:
    assert '<h1>Monitor <code>price-drift</code> <span class="badge verdict status-skipped">no data</span>' in latest
    assert verdict(_reports()[0]) == "no data"
    for section in ("features", "prediction", "slices"):
        body = _section(latest, section)
        assert "no data" in body and "no drift" not in body, section
        assert "not a window without drift" in body, section
    assert "the current window is empty" in _section(latest, "summary")
    assert "no drift" not in _section(latest, "summary")
    trends = _svgs(latest, "drift")
    assert set(trends) == {"x1", "x2", "cat", escape(EVIL), "prediction"}
    for svg in trends.values():  # the empty window is a gap marked at #3, not a point at zero
        assert "<title>#3: no data" in svg and svg.count("<circle") == 2


def test_drift_over_time_draws_each_columns_series_with_its_threshold(latest: str) -> None:
    trends = _svgs(_section(latest, "drift-over-time"), "drift")
    x1 = trends["x1"]
    assert "x1: wasserstein" in x1 and "threshold 0.1" in x1 and 'stroke-dasharray="5 3"' in x1
    assert re.findall(r'<circle class="point( bad)?"', x1) == ["", " bad"]  # #1 calm, #2 drifted (red)
    assert "#2: wasserstein 1.04 — drifted" in x1 and "#1: wasserstein 0.02 — no drift" in x1
    assert [t for t in ("#1", "#2", "#3") if f">{t}</text>" in x1] == ["#1", "#2", "#3"]  # oldest to newest


def test_the_slice_heat_map_has_a_cell_per_slice_and_column_and_marks_the_drifted(drifted: str) -> None:
    slices = _section(drifted, "slices")
    (svg,) = _svgs(slices, "heat-map").values()
    cells = re.findall(r'<g class="cell( drifted| no-data)?" data-slice="([^"]*)" data-column="([^"]*)"', svg)
    slices_, columns = ["cat=a", f"cat={escape(EVIL)}"], ["x1", "x2", "cat", escape(EVIL)]
    assert sorted((s, c) for _, s, c in cells) == sorted((s, c) for s in slices_ for c in columns)
    judged = {(s, c): d == " drifted" for d, s, c in cells}
    assert judged[("cat=a", "x1")] and judged[(f"cat={escape(EVIL)}", "x1")]
    assert not judged[("cat=a", "x2")] and not judged[(f"cat={escape(EVIL)}", "x2")]
    assert svg.count("● ") == 2  # the two drifted cells are marked, not only coloured
    assert 'class="cell new-value drifted" data-slice="cat=d"' in svg and "new value: not in the baseline" in svg
    assert re.search(r'data-slice="cat=a" data-column="cat"><title>[^<]*no data', svg)  # not measured in it
    assert "Drifted: cat=a (x1); cat=" in slices and "cat=d (new value)" in slices


def test_performance_over_time_has_the_training_line_and_the_latest_slices(drifted: str) -> None:
    section = _section(drifted, "performance")
    metrics = _svgs(section, "metric")
    assert set(metrics) == {"rmse", "mae"}
    assert "training 1" in metrics["rmse"] and metrics["rmse"].count("<circle") == 1  # only #2 was scored
    assert "<title>#1: no labels" in metrics["rmse"] and "<title>#3: no data" in metrics["rmse"]
    assert "300 labelled row(s) in report #2" in section and "2 label(s) matched no row" in section
    assert '<tr data-metric="rmse"><td>rmse</td><td class="num">1</td><td class="num">1.5</td>' in section
    table = section[section.index('data-slice-column="cat"'):]
    assert "<td>a</td>" in table and f"<td>{escape(EVIL)}</td>" in table and ">1.65<" in table


def test_the_alerts_list_each_rules_state_and_every_event(latest: str, drifted: str) -> None:
    now = _section(latest, "alerts")
    states = dict(re.findall(r'<tr data-rule="([^"]+)">.*?<td>(.*?)</td></tr>', now))
    assert "firing" in states["rows &lt; 1"] and ">ok<" in states["drift(x1) &gt; 0.1 for 2 windows"]
    assert "firing" in dict(re.findall(r'<tr data-rule="([^"]+)">.*?<td>(.*?)</td></tr>',
                                       _section(drifted, "alerts")))["rmse &gt; 1.2 x training"]
    events = re.findall(r'<tr class="event (\w+)"><td class="nowrap">([^<]+)</td><td class="num">#(\d)</td>'
                        r"<td><code>([^<]+)</code>", now)
    assert events == [("firing", "2024-05-01 04:00:00 UTC", "3", "rows &lt; 1"),
                      ("firing", "2024-05-01 03:00:00 UTC", "2", "rmse &gt; 1.2 x training")]
    assert firing(_reports()[0]) == ["rows < 1"] and firing(None) == []


def test_without_any_report_the_body_says_so() -> None:
    body = report_body(MONITOR, [], [])
    assert "<html" not in body and "no report yet" in body and "keel monitor run price-drift" in body
    assert "<svg" not in body and "No alert event yet." in body


def test_the_score_puts_distances_and_tests_on_one_scale() -> None:
    assert score({"method": "psi", "statistic": 0.2, "threshold": 0.1}) == pytest.approx(2.0)
    assert score({"method": "ks", "statistic": 0.3, "p_value": 0.05, "threshold": 0.05}) == pytest.approx(1.0)
    assert score({"method": "chisquare", "statistic": None, "p_value": 0.0, "threshold": 0.05}) == math.inf
    assert score({"method": "z", "statistic": 0.1, "p_value": 1.0, "threshold": 0.05}) == 0.0
    assert score({"method": "ks", "no_data": True, "threshold": 0.05}) is None
    assert (fmt(None), fmt(1500), fmt(0.000123456), fmt(math.inf), fmt(2.0)) == ("—", "1,500", "0.000123", "∞", "2")


def test_plots_with_nothing_to_draw_are_left_out() -> None:
    assert distribution({"column": "x", "histogram": None}) is None
    assert distribution({"column": "x", "histogram": {"reference": [0.5], "current": [0.5, 0.5]}}) is None
    assert heat_map([], ["x"]) is None
    many = {"column": "c", "new_categories": ["new"], "histogram": {
        "categories": [f"v{i}" for i in range(50)] + ["new"], "reference": [0.02] * 50 + [0.0],
        "current": [0.01] * 50 + [0.5]}}
    svg = distribution(many)
    assert svg is not None and "21 more categories not drawn" in svg and "new (new)" in svg


def test_the_service_section_shows_the_windows_health_and_infrastructure_or_says_no_heartbeat() -> None:
    infra = {"processes": 2, "heartbeats": 480, "cpu": 0.375, "cpu_seconds": 1350.0,
             "memory": {"peak_bytes": 512 * 2**20, "last_bytes": 900 * 2**20}, "uptime": 0.995, "up_seconds": 3582.0,
             "restarts": 1, "requests": 1500, "errors": 3, "error_rate": 0.002}
    service = {"requests": 1500, "requests_per_s": 0.417, "fallback_rate": 0.01, "served_by": {EVIL: 1500},
               "latency_ms": {"p50": 2.5, "p95": 7.0, "p99": 12.0, "max": 40.0}}
    reports = _reports()
    for report, found in zip(reports, [{**service, "infrastructure": None}, {**service, "infrastructure": infra},
                                       None], strict=True):
        if found is not None:
            report.results["service"] = found
    html = render_monitor_report(MONITOR, reports, EVENTS, number=2)
    section = _section(html, "service")
    for shown in ("2.5 / 7 / 12 / 40 ms", "1%", "Serving processes", "0.375 core(s) (37.5% of one core)",
                  "512 MiB / 900 MiB", "99.5% of the window", "Restarts", "3 (0.2%)", escape(EVIL)):
        assert shown in section, shown
    assert EVIL not in html
    assert set(_svgs(section, "service")) == {"p99 latency (ms)", "CPU (cores)", "Memory peak (MiB)", "Uptime"}
    newest = _section(render_monitor_report(MONITOR, reports, EVENTS), "service")
    assert "no heartbeat" in newest and "unknown, not zero" in newest and "Serving processes" not in newest
    oldest = _section(render_monitor_report(MONITOR, reports, EVENTS, number=1), "service")
    assert "Not measured in this report" in oldest
