"""A gate report as one self-contained HTML page (what ``keel gates show REPORT --html OUT`` writes).

One file to attach to a review or a ticket: the CSS is inline, the plots are inline SVG (``keel.gates.plots``,
the same figures the UI page shows), nothing is fetched, and a Content-Security-Policy in the page forbids
any script or other origin, so even an escaped-but-odd value cannot make the file do anything. Every string
from the report is escaped.
"""

from __future__ import annotations

import json
import math
from html import escape
from typing import Any

from keel.gates.model import GateReport, TestResult
from keel.gates.plots import figure

__all__ = ["format_value", "render_report", "verdict"]

_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"
_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;color:#1d2430;background:#f6f7f9;
margin:0}main{max-width:1180px;margin:0 auto;padding:18px 22px 40px}h1{font-size:22px;margin:6px 0 14px}
h2{font-size:16px;margin:0 0 8px}section,.card{background:#fff;border:1px solid #e1e5eb;border-radius:10px;
padding:14px 16px;margin-bottom:14px}table{border-collapse:collapse;width:100%}th,td{text-align:left;
padding:5px 8px;border-bottom:1px solid #e1e5eb;vertical-align:top}th{background:#fafbfc;font-weight:600}
table.kv{width:auto}table.kv th{background:none;color:#5f6b7a;font-weight:500;padding-right:24px}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}code{font:12.5px ui-monospace,
Menlo,Consolas,monospace}.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;
border:1px solid #dde1e7;background:#eef0f3;white-space:nowrap}.passed{background:#e6f4ea;color:#1e6b35;
border-color:#b7dec3}.failed,.error{background:#fdecea;color:#b3261e;border-color:#f2c4c0}.skipped{color:#5f6b7a}
.overridden{background:#fff3e0;color:#9a5b00;border-color:#f3d3a3}.muted{color:#5f6b7a}.evidence{overflow-x:auto;
margin-top:8px}.evidence td{font-size:12.5px}.plot{overflow-x:auto;margin:8px 0}.override{background:#fff3e0;
border:1px solid #f3d3a3;border-radius:8px;padding:10px 12px;margin:10px 0}footer{color:#5f6b7a;font-size:12px}
"""


def render_report(report: GateReport) -> str:
    """The verdict, what was tested against what, a row per test, then each test with its plot and evidence."""
    title = f"Gate report {report.id}: {report.model_ref} {verdict(report)}"
    summary = "".join(_summary_row(i, r) for i, r in enumerate(report.results))
    tests = "".join(_test_section(i, r) for i, r in enumerate(report.results))
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(title)}</title><style>{_CSS}</style></head><body><main>"
            f'<h1>Gate report <code>{escape(report.id)}</code> {_verdict_badge(report)}</h1>'
            f"{_header(report)}{_override(report)}"
            f'<section><h2>Tests</h2><table class="tests"><tr><th>Test</th><th>Kind</th><th>Level</th><th>Status</th>'
            f'<th>Value</th><th>Threshold</th><th>Message</th><th>Duration</th></tr>{summary}</table></section>'
            f"{tests}<footer>Written by keel from {escape(report.ref)}.</footer></main></body></html>")


def verdict(report: GateReport) -> str:
    """What a reader needs first: passed, failed, or failed but released by an approver."""
    if report.status == "passed":
        return "passed"
    return "failed, overridden" if report.override else "failed"


def format_value(value: Any) -> str:
    """Measured values and thresholds as people read them (4 significant digits, lists as JSON)."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, dict | list):
        text = json.dumps(value, default=str)
        return text if len(text) <= 200 else text[:199] + "…"
    return str(value)


def _verdict_badge(report: GateReport) -> str:
    css = "overridden" if report.override and report.status != "passed" else report.status
    return f'<span class="badge verdict {css}">{escape(verdict(report))}</span>'


def _header(report: GateReport) -> str:
    counts = ", ".join(f"{n} {s}" for s, n in report.counts().items() if n)
    blocking = ", ".join(r.name for r in report.blocking)
    if report.against_version is not None:
        against = f"{report.model}/{report.against_version} ({report.against})"
    else:
        against = f"nothing: no other version is {report.against or 'production'}"
    rows = [("Verdict", verdict(report) + (f" — blocking: {blocking}" if blocking else "")),
            ("Model version", report.model_ref), ("Checklist version", f"v{report.checklist_version}"),
            ("Champion compared with", against), ("Data", report.data or "—"), ("Tests", counts or "none"),
            ("Run", f"{report.created_at:%Y-%m-%d %H:%M:%S %Z} by {report.created_by} in {report.duration_s:.2f} s")]
    body = "".join(f"<tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>" for k, v in rows)
    return f'<section><table class="kv">{body}</table></section>'


def _override(report: GateReport) -> str:
    if not report.override:
        return ""
    o = report.override
    who = f"{o.get('by')}" + (f" ({o.get('role')})" if o.get("role") else "")
    return (f'<div class="override"><strong>Released despite the failures</strong> by {escape(who)} at '
            f"{escape(str(o.get('at', '')))}: <q>{escape(str(o.get('reason', '')))}</q></div>")


def _status(result: TestResult) -> str:
    return f'<span class="badge {escape(result.status)}">{escape(result.status)}</span>'


def _level(result: TestResult) -> str:
    return "required" if result.required else "nice-to-have"


def _summary_row(i: int, r: TestResult) -> str:
    return (f'<tr><td><a href="#test-{i}">{escape(r.name)}</a></td><td>{escape(r.kind)}</td><td>{_level(r)}</td>'
            f'<td>{_status(r)}</td><td class="num">{escape(format_value(r.value))}</td>'
            f'<td class="num">{escape(format_value(r.threshold))}</td><td>{escape(r.message)}</td>'
            f'<td class="num">{r.duration_s:.3f} s</td></tr>')


def _test_section(i: int, r: TestResult) -> str:
    plot = figure(r)
    plot_html = f'<div class="plot">{plot}</div>' if plot else ""
    return (f'<section id="test-{i}" class="test"><h2>{escape(r.name)} {_status(r)}</h2>'
            f'<p class="muted">{escape(r.kind)} · {_level(r)} · value {escape(format_value(r.value))}, threshold '
            f"{escape(format_value(r.threshold))} · {r.duration_s:.3f} s</p><p>{escape(r.message)}</p>"
            f"{plot_html}{_evidence(r)}</section>")


def _evidence(r: TestResult) -> str:
    if not r.evidence:
        return ""
    columns = list(dict.fromkeys(k for row in r.evidence for k in row))
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{escape(format_value(row.get(c)))}</td>" for c in columns) + "</tr>"
                   for row in r.evidence)
    kept = f"; the first {len(r.evidence)} are shown" if r.evidence_rows > len(r.evidence) else ""
    return (f'<div class="evidence"><p class="muted">Evidence: {r.evidence_rows} row(s){kept}.</p>'
            f"<table><tr>{head}</tr>{body}</table></div>")
