"""A monitor's reports as one self-contained HTML page, and the same content as a fragment for the UI page.

Like the gate report (``keel.gates.html``): the CSS is inline, the plots are inline SVG (``keel.monitoring.plots``),
nothing is fetched, and a Content-Security-Policy in the page forbids any script or other origin. Every string
from a report is escaped. A report of an empty window says "no data", never "no drift". The monitor's webhook
URL is not shown: such URLs often carry their secret.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from html import escape
from typing import Any

from keel.monitoring.drift import DISTANCES
from keel.monitoring.model import AlertEvent, DriftReport, Monitor
from keel.monitoring.plots import Point, distribution, fmt, heat_map, line_plot, measured, pct

__all__ = ["firing", "monitor_page", "render_monitor_report", "report_body", "verdict", "verdict_class"]

_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"
_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;color:#1d2430;background:#f6f7f9;
margin:0}main{max-width:1280px;margin:0 auto;padding:18px 22px 40px}h1{font-size:22px;margin:6px 0 14px}
h2{font-size:16px;margin:0 0 8px}h3{font-size:14px;margin:12px 0 6px}.card{background:#fff;border:1px solid #e1e5eb;
border-radius:10px;padding:14px 16px;margin-bottom:14px}table{border-collapse:collapse;width:100%}th,td{text-align:left;
padding:4px 8px;border-bottom:1px solid #e1e5eb;vertical-align:top}th{background:#fafbfc;font-weight:600}
table.kv{width:auto}table.kv th{background:none;color:#5f6b7a;font-weight:500;padding-right:24px}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}code{font:12.5px ui-monospace,
Menlo,Consolas,monospace}.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;
border:1px solid #dde1e7;background:#eef0f3;white-space:nowrap}.status-passed{background:#e6f4ea;color:#1e6b35;
border-color:#b7dec3}.status-failed{background:#fdecea;color:#b3261e;border-color:#f2c4c0}.status-skipped{color:#5f6b7a}
.warn{background:#fff3e0;color:#9a5b00;border-color:#f3d3a3}.muted{color:#5f6b7a}.table-scroll,.graph-scroll{
overflow-x:auto}.warn-text{color:#9a5b00}svg.monitor-plot{margin:2px 10px 6px 0;vertical-align:top}
footer{color:#5f6b7a;font-size:12px}
"""
_NO_DATA = "A window without rows is not a window without drift: nothing was compared."


def verdict(report: DriftReport | None) -> str:
    """What a reader needs first: drift, no drift, or no data (an empty window is never "no drift")."""
    if report is None:
        return "no report yet"
    if report.status == "no_data":
        return "no data"
    return "drift" if report.drifted else "no drift"


def verdict_class(text: str) -> str:
    """The badge class of a verdict (the UI's stylesheet and the report's inline CSS both have these)."""
    return {"drift": "status-failed", "no drift": "status-passed"}.get(text, "status-skipped")


def firing(report: DriftReport | None) -> list[str]:
    """The alert rules firing at a report."""
    return [str(a.get("rule")) for a in (report.results.get("alerts") or []) if a.get("firing")] if report else []


def monitor_page(monitors: Any, name: str, *, number: int | None = None, history: int = 50) -> str:
    """The page of monitor ``name`` read through ``monitors`` (the embedded service or its HTTP client: the same
    methods), so a page rendered against a server is the very page the server's workspace would write."""
    monitor = monitors.get(name)
    if number is not None:
        monitors.report(name, number)  # NotFound for a report it does not have
    return render_monitor_report(monitor, monitors.reports(name, limit=history), monitors.alerts(name, limit=200),
                                 number=number)


def render_monitor_report(monitor: Monitor, reports: list[DriftReport], alerts: list[AlertEvent], *,
                          number: int | None = None) -> str:
    """One HTML file: the verdict, each column with its distributions, drift over time, the slices, the model's
    performance, the alerts. ``number``: the report shown in detail (default: the latest)."""
    focus = _focus(reports, number)
    shown = verdict(focus)
    title = f"Monitor {monitor.name}: {shown}" + (f" (report #{focus.number})" if focus else "")
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(title)}</title><style>{_CSS}</style></head><body><main>"
            f'<h1>Monitor <code>{escape(monitor.name)}</code> {_badge(shown, extra="verdict ")}</h1>'
            f"{report_body(monitor, reports, alerts, number=number)}"
            f"<footer>Written by keel from {escape(focus.ref if focus else monitor.ref)} at "
            f"{_when(datetime.now(UTC))}.</footer></main></body></html>")


def report_body(monitor: Monitor, reports: list[DriftReport], alerts: list[AlertEvent], *,
                number: int | None = None) -> str:
    """The report's sections without the page around them: what the UI page embeds."""
    ordered = sorted(reports, key=lambda r: r.number)
    focus = _focus(ordered, number)
    return "".join([_summary(monitor, focus, ordered), _columns_section(focus, "overall"),
                    _columns_section(focus, "prediction"),
                    _columns_section(focus, "label"), _over_time(ordered), _slices(monitor, focus),
                    _performance(ordered, focus), _service(ordered, focus), _alerts(monitor, focus, alerts),
                    _notes(focus)])


def _focus(reports: Iterable[DriftReport], number: int | None) -> DriftReport | None:
    found = [r for r in reports if number is None or r.number == number]
    return max(found, key=lambda r: r.number) if found else None


# -- sections ----------------------------------------------------------------------------------------------------


def _summary(monitor: Monitor, focus: DriftReport | None, ordered: list[DriftReport]) -> str:
    rows = [("Monitor", escape(monitor.ref)), ("Deployment", escape(monitor.deployment) + (
        f" (policy v{focus.deployment_version})" if focus and focus.deployment_version is not None else "")),
            ("Baseline", escape(monitor.baseline) + (f' <span class="muted">({escape(focus.baseline)})</span>'
                                                     if focus else "")),
            ("Default window", escape(monitor.window))]
    if focus is None:
        rows.append(("Verdict", f"{_badge('no report yet')} <code>keel monitor run {escape(monitor.name)}</code> "
                                "makes the first"))
    else:
        rows += [("Window", f"{_when(focus.window_start)} → {_when(focus.window_end)}"),
                 ("Verdict", f"{_badge(verdict(focus), extra='verdict ')} {escape(_because(focus))}"),
                 ("Rows", fmt(focus.rows)), ("Model", escape(focus.model or "—")),
                 ("Report", f"#{focus.number}" + (f" (the newest is #{ordered[-1].number})"
                                                  if ordered[-1].number != focus.number else "")
                            + f", {_when(focus.created_at)} by {escape(focus.created_by)} in "
                              f"{focus.duration_s:.2f} s; {fmt(len(ordered))} report(s) in the plots"),
                 ("Prediction log", "—" if focus.log_version is None else f"version {focus.log_version}")]
    rules = len(monitor.alerts)
    rows.append(("Alerts", f"{rules} rule(s), {len(firing(focus))} firing; "
                           f"{'events are POSTed to a webhook' if monitor.webhook else 'no webhook'}"))
    body = "".join(f"<tr><th>{escape(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<section class="card" id="summary"><h2>Summary</h2><table class="kv">{body}</table></section>'


def _because(report: DriftReport) -> str:
    if report.status == "no_data":
        return f"— {(report.results.get('overall') or {}).get('reason') or 'the window is empty'}. {_NO_DATA}"
    overall = report.results.get("overall") or {}
    text = (f"— {overall.get('number_of_drifted_columns', 0)} of {overall.get('number_of_columns', 0)} column(s) "
            f"drifted ({pct(overall.get('share_of_drifted_columns'))}; the data drifts at {pct(overall.get('share'))})")
    if (report.results.get("prediction") or {}).get("drifted"):
        text += "; the prediction drifted"
    return text


def _columns_section(focus: DriftReport | None, key: str) -> str:
    heading, anchor = {"overall": ("Features", "features"), "prediction": ("Prediction", "prediction"),
                       "label": ("Labels (label drift)", "labels")}[key]
    head = f'<section class="card" id="{anchor}"><h2>{heading}</h2>'
    if focus is None:
        return f'{head}<p class="muted">No report yet.</p></section>'
    found = focus.results.get(key)
    if key == "label" and (found or {}).get("status") != "ok":
        why = {"no_reference": "the baseline has no training labels (a table or a window of the log)"}.get(
            (found or {}).get("status"), "no label has arrived for this window yet (`keel labels ingest`)")
        return f'{head}<p class="muted">Not measured: {escape(why)}.</p></section>'
    if found is None:
        return f'{head}<p class="muted">Not measured: the model\'s output is not one value per row.</p></section>'
    parts = []
    if focus.status == "no_data" or found.get("no_data"):
        parts.append(f'<p class="no-data"><span class="badge status-skipped">no data</span> '
                     f"{escape(found.get('reason') or 'the window is empty')}. {_NO_DATA}</p>")
    columns = found.get("columns") or []
    if columns:
        rows = "".join(_column_row(c) for c in columns)
        parts.append('<div class="table-scroll"><table class="drift-columns"><tr><th>Column</th><th>Method</th>'
                     '<th class="num">Statistic</th><th class="num">p-value</th><th class="num">Threshold</th>'
                     '<th>Verdict</th><th>Missing (reference → current)</th><th>New categories</th>'
                     f"<th>Reference vs current</th></tr>{rows}</table></div>")
    if found.get("missing_columns"):
        parts.append(f'<p class="muted">Not in the window: {escape(", ".join(map(str, found["missing_columns"])))}.'
                     "</p>")
    return head + "".join(parts) + "</section>"


def _column_row(c: dict[str, Any]) -> str:
    name = str(c.get("column"))
    state = "no-data" if c.get("no_data") else "drifted" if c.get("drifted") else "ok"
    if c.get("no_data"):
        judged = f'{_badge("no data")} <span class="muted">{escape(c.get("reason") or "")}</span>'
    else:
        judged = _badge("drifted", "drift") if c.get("drifted") else _badge("no drift")
    threshold = c.get("threshold")
    comparison = "—" if threshold is None else (f"≥ {fmt(threshold)}" if c.get("method") in DISTANCES
                                                else f"p ≤ {fmt(threshold)}" if c.get("method") == "ks"
                                                else f"p &lt; {fmt(threshold)}")
    change = c.get("missing_rate_change")
    missing = (f"{pct(c.get('reference_missing_rate'))} → {pct(c.get('current_missing_rate'))}"
               + (f' <span class="{"warn-text" if change > 0 else "muted"}">({change * 100:+.3g} pt)</span>'
                  if change else ""))
    new = c.get("new_categories") or []
    new_html = (" ".join(f'<span class="badge warn new-category">{escape(str(v))}</span>' for v in new[:20])
                + (f" and {len(new) - 20} more" if len(new) > 20 else "")) if new else '<span class="muted">—</span>'
    plot = distribution(c) or '<span class="muted">—</span>'
    return (f'<tr class="column {state}" data-column="{escape(name)}"><td><strong>{escape(name)}</strong><br>'
            f'<span class="muted">{escape(str(c.get("kind") or ""))}</span></td>'
            f"<td>{escape(str(c.get('method') or '—'))}</td><td class=\"num\">{fmt(c.get('statistic'))}</td>"
            f"<td class=\"num\">{fmt(c.get('p_value'))}</td><td class=\"num\">{comparison}</td><td>{judged}</td>"
            f"<td>{missing}</td><td>{new_html}</td><td>{plot}</td></tr>")


def _over_time(ordered: list[DriftReport]) -> str:
    head = ('<section class="card" id="drift-over-time"><h2>Drift over time</h2><p class="muted">Each column\'s '
            "measured value per report, oldest to newest (a distance, or a test's p-value: drift is above a "
            "distance's threshold, below a p-value's); red points drifted, × a report without data.</p>")
    if not ordered:
        return head + '<p class="muted">No report yet.</p></section>'
    names: dict[tuple[str, str], None] = {}
    for report in ordered:
        for key in ("overall", "prediction", "label"):
            for c in (report.results.get(key) or {}).get("columns") or []:
                names[(key, str(c.get("column")))] = None
    plots = [_trend(ordered, key, name) for key, name in names]
    body = "".join(plots) if plots else '<p class="muted">No report with data yet.</p>'
    return f'{head}<div class="graph-scroll trends">{body}</div></section>'


def _trend(ordered: list[DriftReport], key: str, name: str) -> str:
    points, latest = [], None
    for report in ordered:
        label = f"#{report.number}"
        found = next((c for c in (report.results.get(key) or {}).get("columns") or [] if c.get("column") == name),
                     None)
        if report.status == "no_data" or found is None or found.get("no_data"):
            why = "no data" if report.status == "no_data" else (found or {}).get("reason") or "not measured"
            points.append(Point(label, None, note=f"no data ({why})" if found or report.status == "no_data" else why))
            continue
        what, value = measured(found)
        latest = found
        points.append(Point(label, value, bad=bool(found.get("drifted")),
                            note=f"{what} {fmt(value)} — {'drifted' if found.get('drifted') else 'no drift'}"))
    what = measured(latest)[0] if latest else "drift"
    methods = {c.get("method") for r in ordered for c in (r.results.get(key) or {}).get("columns") or []
               if c.get("column") == name and c.get("method")}
    title = f"{name}: {what}" + (" (method changed)" if len(methods) > 1 else "")
    return line_plot(title, points, line=(latest or {}).get("threshold"), line_label="threshold", column=name,
                     kind="drift")


def _slices(monitor: Monitor, focus: DriftReport | None) -> str:
    head = '<section class="card" id="slices"><h2>Slices</h2>'
    if not monitor.slices:
        return head + ('<p class="muted">No slice column: a monitor created with <code>--slice COLUMN</code> '
                       "compares each of its most frequent values on its own.</p></section>")
    if focus is None or focus.status == "no_data":
        note = "No report yet." if focus is None else f'<span class="badge status-skipped">no data</span> {_NO_DATA}'
        return f"{head}<p class=\"no-data\">{note}</p></section>"
    found = focus.results.get("slices") or {}
    rows: list[dict[str, Any]] = []
    columns: dict[str, None] = {str(c.get("column")): None for c in (focus.results.get("overall") or {}).get(
        "columns") or []}
    for column, values in found.items():
        for value, drift in values.items():
            cells = {str(c.get("column")): c for c in drift.get("columns") or []}
            columns.update(dict.fromkeys(cells))
            rows.append({"label": f"{column}={value}", "rows": drift.get("rows"),
                         "new": drift.get("status") == "new_value", "cells": cells,
                         "reason": drift.get("reason") if drift.get("no_data") and not cells else None})
    svg = heat_map(rows, list(columns))
    if svg is None:
        return head + '<p class="muted">No slice value in this window.</p></section>'
    drifted = [f"{r['label']} (new value)" if r["new"] else
               f"{r['label']} ({', '.join(k for k, c in r['cells'].items() if c.get('drifted'))})"
               for r in rows if r["new"] or any(c.get("drifted") for c in r["cells"].values())]
    listed = (f"<p>Drifted: {escape('; '.join(drifted))}.</p>" if drifted
              else '<p class="muted">No slice drifted.</p>')
    return (f'{head}<p class="muted">Each slice value against its own baseline: a cell\'s colour is how far the '
            "column is towards its threshold (statistic ÷ threshold for a distance, log p ÷ log threshold for a "
            "test: 1 is the threshold); ● marks a drifted cell. Small slices are compared with tests, so their "
            f'numbers are p-values.</p><div class="graph-scroll">{svg}</div>{listed}</section>')


def _performance(ordered: list[DriftReport], focus: DriftReport | None) -> str:
    head = '<section class="card" id="performance"><h2>Performance</h2>'
    if focus is None:
        return head + '<p class="muted">No report yet.</p></section>'
    perfs = [(r, r.results.get("performance") or {}) for r in ordered]
    names = list(dict.fromkeys(k for _, p in perfs for k in (p.get("metrics") or {})))
    training = {k: v for _, p in perfs for k, v in (p.get("training") or {}).items()}
    parts = [f"<p>{_perf_status(focus)}</p>"]
    plots = []
    for name in names:
        points = [Point(f"#{r.number}", (p.get("metrics") or {}).get(name) if p.get("status") == "ok" else None,
                        note=_perf_note(r, p, name)) for r, p in perfs]
        plots.append(line_plot(name, points, line=training.get(name), line_label="training", column=name,
                               kind="metric", zero=False))
    if plots:
        parts.append(f'<div class="graph-scroll trends">{"".join(plots)}</div>')
    current = focus.results.get("performance") or {}
    change = current.get("change") or {}
    if change:
        body = "".join(f'<tr data-metric="{escape(k)}"><td>{escape(k)}</td><td class="num">{fmt(v.get("training"))}'
                       f'</td><td class="num">{fmt(v.get("window"))}</td><td class="num">{fmt(v.get("ratio"))}</td>'
                       f"<td>{'worse' if v.get('worse') else 'not worse' if v.get('worse') is False else '—'}</td></tr>"
                       for k, v in change.items())
        parts.append('<h3>Against training</h3><table class="compact change"><tr><th>Metric</th>'
                     '<th class="num">Training</th><th class="num">Window</th><th class="num">Ratio</th><th></th>'
                     f"</tr>{body}</table>")
    for column, per in (current.get("slices") or {}).items():
        metrics = list(dict.fromkeys(k for row in per for k in row if k not in ("value", "rows")))
        head_row = "".join(f'<th class="num">{escape(m)}</th>' for m in metrics)
        body = "".join(f'<tr><td>{escape(str(row.get("value")))}</td><td class="num">{fmt(row.get("rows"))}</td>'
                       + "".join(f'<td class="num">{fmt(row.get(m))}</td>' for m in metrics) + "</tr>" for row in per)
        parts.append(f'<h3>Per {escape(column)}</h3><div class="table-scroll"><table class="compact slice-metrics" '
                     f'data-slice-column="{escape(column)}"><tr><th>{escape(column)}</th><th class="num">Rows</th>'
                     f"{head_row}</tr>{body}</table></div>")
    return head + "".join(parts) + "</section>"


def _perf_status(report: DriftReport) -> str:
    found = report.results.get("performance") or {}
    status = found.get("status")
    if report.status == "no_data":
        return '<span class="badge status-skipped">no data</span> The window is empty: nothing to score.'
    if status == "ok":
        unmatched = found.get("unmatched_labels") or 0
        return (f"{fmt(found.get('rows'))} labelled row(s) in report #{report.number} "
                f"({escape(str(found.get('task') or ''))})"
                + (f"; {fmt(unmatched)} label(s) matched no row of the window" if unmatched else "") + ".")
    if status == "no_labels":
        return ('<span class="badge status-skipped">no labels</span> No label has arrived for this window yet '
                "(<code>keel deploy feedback</code> sends them).")
    return f'<span class="badge status-skipped">not scored</span> {escape(str(found.get("reason") or status))}'


def _perf_note(report: DriftReport, found: dict[str, Any], name: str) -> str:
    if report.status == "no_data":
        return "no data"
    if found.get("status") != "ok":
        return "no labels" if found.get("status") == "no_labels" else "not scored"
    return f"{name} {fmt((found.get('metrics') or {}).get(name))} on {fmt(found.get('rows'))} labelled rows"


def _service(ordered: list[DriftReport], focus: DriftReport | None) -> str:
    """The window's service health (from the answers) and infrastructure (from the serving processes'
    heartbeats), and both over the reports."""
    head = '<section class="card" id="service"><h2>Service and infrastructure</h2>'
    if focus is None:
        return head + '<p class="muted">No report yet.</p></section>'
    service = focus.results.get("service")
    if not service:
        return head + '<p class="muted">Not measured in this report.</p></section>'
    latency = service.get("latency_ms") or {}
    rows = [("Requests", f"{fmt(service.get('requests'))} ({fmt(service.get('requests_per_s'))}/s)"),
            ("Latency p50 / p95 / p99 / max", " / ".join(fmt(latency.get(k)) for k in ("p50", "p95", "p99", "max"))
             + " ms"),
            ("Answered by a fallback", pct(service.get("fallback_rate"))),
            ("Answered by", escape(", ".join(f"{k}: {fmt(v)}" for k, v in (service.get("served_by") or {}).items())
                                   or "—"))]
    infra = service.get("infrastructure")
    if infra:
        memory = infra.get("memory") or {}
        cpu = infra.get("cpu")
        rows += [("Serving processes", fmt(infra.get("processes"))),
                 ("CPU", "—" if cpu is None else f"{fmt(cpu)} core(s) ({pct(cpu)} of one core)"),
                 ("Memory peak / last", f"{_mb(memory.get('peak_bytes'))} / {_mb(memory.get('last_bytes'))}"),
                 ("Uptime", f"{pct(infra.get('uptime'))} of the window ({fmt(infra.get('up_seconds'))} s)"),
                 ("Restarts", fmt(infra.get("restarts"))),
                 ("Errors (5xx)", f"{fmt(infra.get('errors'))} ({pct(infra.get('error_rate'))})")]
    body = "".join(f"<tr><th>{escape(k)}</th><td>{v}</td></tr>" for k, v in rows)
    parts = [f'<table class="kv service">{body}</table>']
    if "infrastructure" in service and not infra:
        parts.append('<p class="no-data"><span class="badge status-skipped">no heartbeat</span> No serving process '
                     "reported in this window: its CPU, memory and uptime are unknown, not zero.</p>")
    plots = []
    for title, read in (("p99 latency (ms)", lambda s: (s.get("latency_ms") or {}).get("p99")),
                        ("CPU (cores)", lambda s: (s.get("infrastructure") or {}).get("cpu")),
                        ("Memory peak (MiB)", lambda s: _mb_value(((s.get("infrastructure") or {}).get("memory")
                                                                  or {}).get("peak_bytes"))),
                        ("Uptime", lambda s: (s.get("infrastructure") or {}).get("uptime"))):
        values = [read(r.results.get("service") or {}) for r in ordered]
        points = [Point(f"#{r.number}", v, note=fmt(v) if v is not None else "no value")
                  for r, v in zip(ordered, values, strict=True)]
        if any(p.value is not None for p in points):
            plots.append(line_plot(title, points, line=None, line_label="", column=title, kind="service"))
    if plots:
        parts.append(f'<div class="graph-scroll trends">{"".join(plots)}</div>')
    return head + "".join(parts) + "</section>"


def _mb_value(value: Any) -> float | None:
    return None if value is None else value / 2**20


def _mb(value: Any) -> str:
    return "—" if value is None else f"{fmt(value / 2**20)} MiB"


def _alerts(monitor: Monitor, focus: DriftReport | None, events: list[AlertEvent]) -> str:
    head = '<section class="card" id="alerts"><h2>Alerts</h2>'
    if not monitor.alerts and not events:
        return head + ('<p class="muted">No alert rule: e.g. <code>--alert "psi(price) &gt; 0.2 for 2 windows"'
                       "</code>.</p></section>")
    states = {str(s.get("rule")): s for s in (focus.results.get("alerts") or [] if focus else [])}
    rows = []
    for rule in dict.fromkeys([*monitor.alerts, *states]):
        s = states.get(rule)
        state = ('<span class="muted">not evaluated yet</span>' if s is None else
                 '<span class="badge status-failed">firing</span>' if s.get("firing") else
                 '<span class="badge warn">holds</span>' if s.get("holds") else
                 '<span class="badge status-passed">ok</span>')
        rows.append(f'<tr data-rule="{escape(rule)}"><td><code>{escape(rule)}</code></td>'
                    f'<td class="num">{fmt((s or {}).get("value"))}</td><td>{state}</td></tr>')
    parts = [head, '<h3>Rules now</h3><table class="compact rules"><tr><th>Rule</th><th class="num">Value</th>'
             f"<th>State</th></tr>{''.join(rows)}</table>"]
    if events:
        body = "".join(f'<tr class="event {escape(e.state)}"><td class="nowrap">{_when(e.at)}</td>'
                       f'<td class="num">#{e.report}</td><td><code>{escape(e.rule)}</code></td>'
                       f'<td>{_badge(e.state, "drift" if e.state == "firing" else "no drift")}</td>'
                       f'<td class="num">{fmt(e.value)}</td><td>{escape(e.webhook or "—")}</td></tr>' for e in events)
        parts.append('<h3>Events</h3><div class="table-scroll"><table class="compact events"><tr><th>At</th>'
                     '<th class="num">Report</th><th>Rule</th><th>State</th><th class="num">Value</th>'
                     f"<th>Webhook</th></tr>{body}</table></div>")
    else:
        parts.append('<p class="muted">No alert event yet.</p>')
    return "".join(parts) + "</section>"


def _notes(focus: DriftReport | None) -> str:
    notes = [str(n) for n in (focus.results.get("notes") or [])] if focus else []
    body = "".join(f"<li>{escape(n)}</li>" for n in notes)
    return ('<section class="card" id="notes"><h2>Notes</h2>'
            + (f"<ul>{body}</ul>" if notes else '<p class="muted">None.</p>') + "</section>")


# -- pieces ------------------------------------------------------------------------------------------------------


def _badge(text: str, kind: str | None = None, extra: str = "") -> str:
    return f'<span class="badge {extra}{verdict_class(kind or text)}">{escape(text)}</span>'


def _when(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
