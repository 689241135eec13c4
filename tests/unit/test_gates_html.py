"""The gate report as one HTML file: every test with its evidence, the three plots (slice bars, directional
curve, latency histograms) as well-formed inline SVG, nothing fetched, and every value escaped."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

import keel
from gates_helpers import CHECKLIST, register, toy_world  # tests/ is on sys.path (tests/conftest.py)
from keel.gates.html import format_value, render_report
from keel.gates.model import GateReport, TestResult
from keel.gates.plots import MAX_SLICES, figure, nice_ticks, slice_bars

EVIL = "<script>alert('x')</script>"


def _result(name: str, kind: str, status: str = "passed", **fields) -> TestResult:
    base = dict(name=name, kind=kind, required=True, status=status, value=1.0, threshold=1.0, message=f"{name} ok",
                evidence=[], evidence_rows=0, details={}, duration_s=0.012)
    return TestResult(**{**base, **fields})


def _slice_result(values: dict[str, float], min_rows: int = 30, **fields) -> TestResult:
    slices = [{"column": "room_type", "value": v, "rows": 40, "rmse": m, "mae": m / 2} for v, m in values.items()]
    failing = [{"slice": f"room_type={v}", "rows": 40, "condition": "rmse <= 3", "value": m, "bound": 3.0,
                "status": "failed", "message": f"rmse <= 3: rmse {m}"} for v, m in values.items() if m > 3]
    return _result("slices", "slice", "failed" if failing else "passed", value=max(values.values()), threshold=3.0,
                   message=f"{len(failing)} slice condition(s) failed", evidence=failing, evidence_rows=len(failing),
                   details={"slices": slices, "min_rows": min_rows}, **fields)


def _report(results: list[TestResult], override: dict | None = None) -> GateReport:
    return GateReport(id="0123456789abcdef", model="price", version=3, checklist_version=2,
                      status="failed" if any(r.blocking for r in results) else "passed", against="production",
                      against_version=2, data="split:listings-split@1", results=results, duration_s=1.25,
                      created_at=datetime(2024, 5, 1, 12, 0, tzinfo=UTC), created_by="dev", override=override)


def _full_report(override: dict | None = None) -> GateReport:
    return _report([
        _result("metric", "metric", value=41.5, threshold=45.0, message="rmse <= 0.95 * champion: rmse 41.5 <= 45",
                evidence=[{"condition": "rmse <= 0.95 * champion", "value": 41.5, "bound": 45.0}], evidence_rows=1),
        _slice_result({"Entire home": 2.1, "Shared room": 4.4, EVIL: 3.9}),
        _result("accommodates up", "directional", "failed", value=0.8, threshold=1.0,
                message="raising accommodates by 1 decreased the output for 60 of 300 rows",
                evidence=[{"accommodates": 4, "output": 120.0, "output (accommodates + 1)": 118.5, "change": -1.5}],
                evidence_rows=60, details={"curve": [[0.0, 100.0], [1.0, 99.0], [2.0, 101.0], [3.0, 104.0]],
                                          "column": "accommodates"}),
        _result("budget", "budget", value=2.5, threshold=50.0, message="within budget",
                evidence=[{"measure": "single_ms", "value": 2.5, "limit": 50.0}, {"measure": "batch_ms", "value": 9.0,
                                                                                  "limit": 12.0}],
                evidence_rows=2, details={"latency_ms": {"single": [2.4, 2.5, 2.7, 2.5, 3.1],
                                                         "batch": [8.5, 9.0, 9.4, 11.0, 8.8]}}),
        _result("nice fairness", "fairness", required=False, status="failed", value=3.9, threshold=2.0,
                message="error_rate_gap 3.958 > 2"),
        _result("smoke", "smoke", "error", value=None, threshold=None, message="ValueError: boom <b>"),
    ], override=override)


def _svgs(html: str) -> list[ET.Element]:
    return [ET.fromstring(svg) for svg in re.findall(r"<svg\b.*?</svg>", html, re.S)]


def test_the_page_has_the_verdict_the_context_and_a_row_per_test_with_its_evidence() -> None:
    html = render_report(_full_report())
    assert html.startswith("<!doctype html>") and html.count("<html") == 1
    assert 'class="badge verdict failed">failed<' in html
    for shown in ("price/3", "v2", "price/2 (production)", "split:listings-split@1",
                  "blocking: slices, accommodates up"):
        assert shown in html, shown
    for name in ("metric", "slices", "accommodates up", "budget", "nice fairness", "smoke"):
        assert f'">{name}</a></td>' in html  # the summary row links to the test's section
    assert "nice-to-have" in html and "0.012 s" in html
    assert "rmse &lt;= 0.95 * champion" in html and "Evidence: 60 row(s); the first 1 are shown." in html
    assert "output (accommodates + 1)" in html and "118.5" in html  # the evidence table
    assert "ValueError: boom &lt;b&gt;" in html


def test_the_three_plots_are_drawn_as_well_formed_svg_from_the_details() -> None:
    html = render_report(_full_report())
    svgs = _svgs(html)
    labels = [svg.get("aria-label") for svg in svgs]
    assert labels == ["slices: rmse per slice", "accommodates up: directional curve of accommodates",
                      "budget: predict latency"]
    ns = "{http://www.w3.org/2000/svg}"
    bars, curve, latency = svgs
    states = [g.get("class") for g in bars.iter(f"{ns}g")]
    assert states == ["bar passed", "bar failed", "bar failed"]  # the failing slices are highlighted
    assert any(t.text == "threshold 3" for t in bars.iter(f"{ns}text"))
    assert len(curve.findall(f"{ns}circle")) == 4 and curve.find(f"{ns}polyline") is not None
    captions = [t.text for t in latency.iter(f"{ns}text") if "calls)" in (t.text or "")]
    assert captions == ["one row (5 calls)", "a batch of 1,000 rows (5 calls)"]
    assert any("limit 50 ms" in (t.text or "") for t in latency.iter(f"{ns}text"))
    for svg in svgs:  # presentation attributes only: the UI's CSP forbids inline style
        assert all("style" not in el.attrib for el in svg.iter())


def test_a_malicious_slice_value_is_escaped_everywhere() -> None:
    html = render_report(_full_report())
    assert "<script" not in html.lower()
    assert "&lt;script&gt;" in html  # shown, as text, in the evidence table and the plot's labels
    bars = _svgs(html)[0]
    titles = [t.text for t in bars.iter("{http://www.w3.org/2000/svg}title")]
    assert any(f"room_type={EVIL}: rmse 3.9" in (t or "") for t in titles)  # escaped, not dropped: parses back


def test_nothing_is_fetched_and_no_script_can_run() -> None:
    html = render_report(_full_report())
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "url(" not in html and "@import" not in html and "<link" not in html
    assert "default-src 'none'" in html and "script-src" not in html  # the meta CSP forbids every script


def test_the_override_is_shown_with_who_and_why() -> None:
    html = render_report(_full_report({"by": "ana", "role": "approver", "reason": "ships <today>",
                                       "at": "2024-05-02T09:00:00+00:00"}))
    assert 'class="badge verdict overridden">failed, overridden<' in html
    assert "ana (approver)" in html and "ships &lt;today&gt;" in html


def test_tests_without_what_a_plot_needs_have_no_plot() -> None:
    assert figure(_result("slices", "slice", "error")) is None  # it raised: no details
    assert figure(_result("d", "directional", details={"curve": [[0.0, 1.0]]})) is None
    assert figure(_result("b", "budget", details={"latency_ms": {"single": []}})) is None
    assert figure(_result("m", "metric")) is None
    assert "<svg" not in render_report(_report([_result("smoke", "smoke")]))


def test_many_slices_keep_the_failing_ones() -> None:
    values = {f"v{i:03d}": 1.0 for i in range(MAX_SLICES + 20)} | {"late-bad": 9.0}
    svg = ET.fromstring(slice_bars(_slice_result(values)))
    states = [g.get("class") for g in svg.iter("{http://www.w3.org/2000/svg}g")]
    assert len(states) == MAX_SLICES and states[-1] == "bar failed"
    assert "(21 more not drawn)" in "".join(svg.itertext())


def test_slices_too_small_to_judge_are_grey_not_failed() -> None:
    svg = ET.fromstring(slice_bars(_slice_result({"a": 9.0, "b": 1.0}, min_rows=100)))
    assert [g.get("class") for g in svg.iter("{http://www.w3.org/2000/svg}g")] == ["bar small", "bar small"]


def test_values_and_ticks_read_well() -> None:
    assert [format_value(v) for v in (None, 0.123456, 3, True, [1, 2], "x")] == ["—", "0.1235", "3", "true",
                                                                                 "[1, 2]", "x"]
    assert nice_ticks(0, 5) == [0, 1, 2, 3, 4, 5] and nice_ticks(-0.3, 0.7) == [-0.2, 0, 0.2, 0.4, 0.6]
    assert nice_ticks(2, 2) == [2]


def test_a_real_gate_run_draws_all_three_plots(tmp_path: Path) -> None:
    """The details the built-in tests store are what the plots read."""
    ws = keel.init(tmp_path / "ws")
    try:
        split = toy_world(ws, n=800)
        register(ws, split, broken="anti_monotone")
        ws.gates.set_checklist("toy", CHECKLIST + "  - kind: budget\n    max_single_ms: 50\n    repeats: 5\n")
        report = ws.gates.run("toy/1")
        html = ws.gates.html(report.id)
    finally:
        ws.close()
    assert report.status == "failed"
    labels = [svg.get("aria-label") for svg in _svgs(html)]
    assert labels == ["slice: rmse per slice", "directional: directional curve of x1", "budget: predict latency"]
    assert html.count('class="bar failed"') >= 1
