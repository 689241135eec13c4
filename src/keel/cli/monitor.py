"""``keel monitor``: watch a deployment's predictions against a trusted baseline, window by window and slice by
slice; every run is a numbered drift report (``keel monitor reports``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
import yaml

from keel.cli.context import console, print_json, print_table, state
from keel.errors import InvalidInput
from keel.monitoring.model import DriftReport, Monitor

app = typer.Typer(no_args_is_help=True, help="Monitors: drift of a deployment's inputs and predictions.")

NAME = typer.Argument(..., help="The monitor's name.")
FORMAT = typer.Option("table", "--format", help="table | json")
REASON = typer.Option(None, "--reason", help="Why (kept in the audit log).")
_CONFIG_KEYS = {"baseline", "window", "slices", "methods", "thresholds", "share", "alerts", "webhook", "kpis"}


@app.command()
def create(ctx: typer.Context, name: str = NAME,
           deployment: str = typer.Option(..., "--deployment", help="The deployment whose predictions it watches."),
           baseline: str = typer.Option(None, "--baseline", help="training (default: the deployed version's train "
                                        "part), a table ref, or window:START..END of the deployment's own log."),
           window: str = typer.Option(None, "--window", help="A run's default window, back from now: 1h, 1d "
                                      "(default 1d)."),
           slices: list[str] = typer.Option(None, "--slice", help="A column to report drift per value of; repeat."),
           alert: list[str] = typer.Option(None, "--alert", help="A rule, e.g. 'psi(price) > 0.2 for 2 windows' "
                                           "or 'rmse > 1.2 x training'; repeat."),
           webhook: str = typer.Option(None, "--webhook", help="POST alert events here (public addresses only, "
                                       "unless the workspace allows private ones)."),
           kpi: list[str] = typer.Option(None, "--kpi", help="NAME=module:function, a function of the window's rows "
                                         "(inputs, prediction, label) to a number; repeat."),
           config: Path = typer.Option(None, "--config", help="YAML with baseline, window, slices, methods "
                                       "({column: psi|ks|wasserstein|jensenshannon|chisquare|z}), thresholds "
                                       "({column: number}), share, alerts and webhook; options given here win."),
           reason: str = REASON, fmt: str = FORMAT) -> None:
    """A monitor of a deployment; its baseline's statistics are computed and stored now."""
    _check_format(fmt)
    spec = _config(config)
    monitor = _monitors(ctx).create(
        name, deployment, baseline=baseline or spec.get("baseline", "training"), window=window or spec.get("window",
                                                                                                          "1d"),
        slices=list(slices or spec.get("slices") or []), methods=spec.get("methods"),
        thresholds=spec.get("thresholds"), share=spec.get("share", 0.5),
        alerts=list(alert or spec.get("alerts") or []), webhook=webhook or spec.get("webhook"),
        kpis=_kpis(kpi) or spec.get("kpis"), reason=reason)
    _print_monitor(monitor, fmt)


@app.command("list")
def list_(ctx: typer.Context, deployment: str = typer.Option(None, "--deployment", help="Only this deployment's."),
          fmt: str = FORMAT) -> None:
    """Every monitor, with its latest report number."""
    _check_format(fmt)
    found = _monitors(ctx).list(deployment)
    if fmt == "json":
        print_json([m.to_dict() for m in found])
        return
    print_table("monitors", ["name", "deployment", "baseline", "window", "slices", "reports"],
                [(m.name, m.deployment, m.baseline, m.window, ", ".join(m.slices), m.latest_report) for m in found])


@app.command()
def show(ctx: typer.Context, name: str = NAME, fmt: str = FORMAT) -> None:
    """A monitor's settings."""
    _check_format(fmt)
    _print_monitor(_monitors(ctx).get(name), fmt)


@app.command()
def run(ctx: typer.Context, name: str = NAME,
        window: str = typer.Option(None, "--window", help="1h / 7d back from now, or START..END (ISO times); "
                                   "default: the monitor's window."),
        fmt: str = FORMAT) -> None:
    """Compare one window of the deployment's log with the baseline; stored as the next report. Exit code 0
    whether or not it drifted (see `drifted` in the output)."""
    _check_format(fmt)
    _print_report(_monitors(ctx).run(name, window=window), fmt)


@app.command()
def reports(ctx: typer.Context, name: str = NAME, limit: int = typer.Option(20, "--limit", min=1, max=10_000),
            fmt: str = FORMAT) -> None:
    """The monitor's reports, newest first."""
    _check_format(fmt)
    found = _monitors(ctx).reports(name, limit=limit)
    if fmt == "json":
        print_json([r.to_dict() for r in found])
        return
    print_table(f"reports of {name}", ["#", "window", "status", "rows", "drifted", "columns", "model"],
                [(r.number, f"{r.window_start:%Y-%m-%d %H:%M}..{r.window_end:%Y-%m-%d %H:%M}", r.status, r.rows,
                  "yes" if r.drifted else "no", ", ".join(r.drifted_columns()), r.model) for r in found])


@app.command()
def report(ctx: typer.Context, name: str = NAME,
           number: int = typer.Option(None, "--number", min=1, help="Which report (default: the latest)."),
           out: Path = typer.Option(None, "--out", help="Write the monitor as one self-contained HTML page (opens "
                                    "offline): distributions, drift and performance over time, slices, alerts."),
           fmt: str = FORMAT) -> None:
    """One report: per column its method, statistic, threshold and verdict; the prediction; each slice."""
    _check_format(fmt)
    if out is not None:
        page = _monitors(ctx).html(name, number=number)
        try:
            out.write_text(page, encoding="utf-8")
        except OSError as exc:
            raise InvalidInput(f"cannot write {out}: {exc.strerror or exc}") from None
        console.print(f"wrote {out} ({len(page.encode()) // 1024} KiB)", markup=False)
        return
    _print_report(_monitors(ctx).report(name, number), fmt)


@app.command()
def alerts(ctx: typer.Context, name: str = typer.Argument(None, help="Only this monitor's (default: every one)."),
           limit: int = typer.Option(50, "--limit", min=1, max=10_000), fmt: str = FORMAT) -> None:
    """Alert events, newest first: a rule that started (firing) or stopped (resolved) holding."""
    _check_format(fmt)
    found = _monitors(ctx).alerts(name, limit=limit)
    if fmt == "json":
        print_json([e.to_dict() for e in found])
        return
    print_table("alerts", ["at", "monitor", "report", "state", "rule", "value", "webhook"],
                [(f"{e.at:%Y-%m-%d %H:%M:%S}", e.monitor, e.report, e.state, e.rule, _num(e.value), e.webhook or "")
                 for e in found])


@app.command()
def delete(ctx: typer.Context, name: str = NAME, reason: str = REASON) -> None:
    """Stop a monitor (its reports stay)."""
    _monitors(ctx).delete(name, reason=reason)
    console.print(f"monitor {name} deleted", markup=False)


def _monitors(ctx: typer.Context) -> Any:
    return state(ctx).workspace().monitors


def _kpis(given: list[str] | None) -> dict[str, str]:
    kpis = {}
    for item in given or []:
        name, sep, target = item.partition("=")
        if not sep or not name.strip() or not target.strip():
            raise InvalidInput(f"--kpi {item!r}: write NAME=module:function")
        kpis[name.strip()] = target.strip()
    return kpis


def _check_format(fmt: str) -> None:
    if fmt not in ("table", "json"):
        raise InvalidInput(f"--format {fmt!r}: use table or json")


def _config(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(spec, dict):
        raise InvalidInput(f"{path} must be a mapping with keys among {', '.join(sorted(_CONFIG_KEYS))}")
    unknown = set(spec) - _CONFIG_KEYS
    if unknown:
        raise InvalidInput(f"{path}: unknown key(s) {', '.join(sorted(unknown))}; use "
                           f"{', '.join(sorted(_CONFIG_KEYS))}")
    return spec


def _print_monitor(monitor: Monitor, fmt: str) -> None:
    if fmt == "json":
        print_json(monitor.to_dict())
        return
    console.print(f"{monitor.ref} watches deployment {monitor.deployment}: baseline {monitor.baseline}, window "
                  f"{monitor.window}, slices {', '.join(monitor.slices) or 'none'}, {monitor.latest_report} report(s)",
                  markup=False, soft_wrap=True)
    for rule in monitor.alerts:
        console.print(f"alert: {rule}" + (f" -> {monitor.webhook}" if monitor.webhook else ""), markup=False,
                      soft_wrap=True)


def _print_report(found: DriftReport, fmt: str) -> None:
    if fmt == "json":
        print_json(found.to_dict())
        return
    verdict = "no data" if found.status == "no_data" else "DRIFT" if found.drifted else "no drift"
    console.print(f"{found.ref}: {verdict} — {found.rows} rows {found.window_start:%Y-%m-%d %H:%M}.."
                  f"{found.window_end:%Y-%m-%d %H:%M} UTC, model {found.model}", markup=False, soft_wrap=True)
    overall = found.results.get("overall", {})
    columns = list(overall.get("columns", []))
    columns += found.results.get("prediction", {}).get("columns", [])
    print_table(None, ["column", "kind", "method", "statistic", "threshold", "drifted", "missing Δ", "new values"],
                [(c["column"], c.get("kind"), c.get("method"), _num(c.get("statistic")), _num(c.get("threshold")),
                  "yes" if c.get("drifted") else "no", _num(c.get("missing_rate_change")),
                  ", ".join(map(str, c.get("new_categories") or []))[:60]) for c in columns])
    for column, values in found.results.get("slices", {}).items():
        print_table(f"by {column}", ["value", "rows", "drifted", "columns"],
                    [(v, s.get("rows", s.get("current_rows")), "yes" if s.get("drifted") else "no",
                      ", ".join(c["column"] for c in s.get("columns", []) if c.get("drifted")))
                     for v, s in values.items()])
    scored = found.results.get("performance", {})
    if scored.get("status") == "ok":
        print_table(f"performance on {scored['rows']} labelled row(s)", ["metric", "window", "training", "ratio"],
                    [(name, _num(value), _num(scored["training"].get(name)),
                      _num(scored.get("change", {}).get(name, {}).get("ratio"))) for name, value in
                     scored["metrics"].items()])
    elif scored:
        console.print(f"performance: {scored.get('status')} ({scored.get('unmatched_labels', 0)} label(s) matched "
                      "no row of this window)", markup=False, soft_wrap=True)
    service = found.results.get("service") or {}
    if service.get("requests"):
        latency = service.get("latency_ms") or {}
        console.print(f"service: {service['requests']} request(s), p50 {_num(latency.get('p50'))} ms, p99 "
                      f"{_num(latency.get('p99'))} ms, fallback rate {_num(service.get('fallback_rate'))}",
                      markup=False, soft_wrap=True)
    for name, kpi in (found.results.get("kpis") or {}).items():
        console.print(f"kpi {name}: {_num(kpi.get('value'))}" + (f" ({kpi['error']})" if kpi.get("error") else ""),
                      markup=False, soft_wrap=True)
    for rule in found.results.get("alerts", []):
        console.print(f"alert {'FIRING' if rule['firing'] else 'ok'}: {rule['rule']} (value "
                      f"{_num(rule['value'])})", markup=False, soft_wrap=True)
    for note in found.results.get("notes", []):
        console.print(f"note: {note}", markup=False, soft_wrap=True)


def _num(value: Any) -> str:
    return "" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


logs = typer.Typer(no_args_is_help=True, help="The prediction log: search it by any field.")


@logs.command("query")
def query(ctx: typer.Context,
          where: str = typer.Argument(None, help="DuckDB SQL over the log's columns, e.g. \"deployment = 'price' "
                                      "and latency_ms > 50\" (default: every row)."),
          columns: str = typer.Option(None, "--columns", help="Comma-separated columns (default: all)."),
          limit: int = typer.Option(100, "--limit", min=1, max=1_000_000, help="Newest rows first, at most this."),
          fmt: str = FORMAT) -> None:
    """Rows of the prediction log (primary answers, shadows, feedback) matching a filter, newest first."""
    _check_format(fmt)
    wanted = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    found = state(ctx).workspace().monitors.query_log(where, columns=wanted, limit=limit)
    rows = found.to_pylist()
    if fmt == "json":
        print_json(rows)
        return
    names = found.column_names
    print_table(f"{len(rows)} row(s)", names, [[_cell(r[n]) for n in names] for r in rows])


REQUEST_ID = typer.Argument(..., help="The request id (the answer's request_id, or the client's X-Request-ID).")


def trace(ctx: typer.Context, request_id: str = REQUEST_ID, fmt: str = FORMAT) -> None:
    """Reconstruct one prediction: request, features, route, model version and its training data, output,
    latency, fallback, shadows and feedback."""
    _check_format(fmt)
    found = state(ctx).workspace().monitors.trace(request_id)
    if fmt == "json":
        print_json(found)
        return
    route, model = found["route"], found["model"] or {}
    console.print(f"request {found['request_id']} at {found['at']} to {found['deployment']}: arm {route['arm']}, "
                  f"chosen {route['model']}, answered by {route['served_by']}"
                  + (f" (fallback: {route['fallback']})" if route["fallback"] else "")
                  + f" in {found['latency_ms']:.2f} ms", markup=False, soft_wrap=True)
    console.print(f"request: {_cell(found['request'], 2000)}", markup=False, soft_wrap=True)
    if found["features"] is not None:
        console.print(f"features looked up: {_cell(found['features'], 2000)}", markup=False, soft_wrap=True)
    console.print(f"output: {_cell(found['output'], 2000)}", markup=False, soft_wrap=True)
    if model:
        console.print(f"model {model.get('version')}: run {model.get('run')}, trained on {model.get('trained_on')}"
                      f" (label {model.get('label')}); upstream: {', '.join(model.get('upstream', [])) or 'none'}",
                      markup=False, soft_wrap=True)
    policy = found["deployment_version"]
    if policy:
        console.print(f"policy in effect: version {policy['version']} ({policy['action']} by {policy['by']})",
                      markup=False, soft_wrap=True)
    for shadow in found["shadows"]:
        console.print(f"shadow {shadow['model']}: {_cell(shadow['output'], 500)} ({shadow['status']}, "
                      f"{shadow['latency_ms']:.2f} ms)", markup=False, soft_wrap=True)
    for item in found["feedback"]:
        console.print(f"feedback at {item.pop('at')}: {_cell(item, 500)}", markup=False, soft_wrap=True)


def _cell(value: Any, width: int = 80) -> str:
    import orjson

    text = value if isinstance(value, str) else orjson.dumps(value, default=str).decode()
    return text if len(text) <= width else text[:width - 1] + "…"


labels = typer.Typer(no_args_is_help=True, help="Labels that arrive later, for the monitors' performance.")


@labels.command("ingest")
def ingest(ctx: typer.Context, path: Path = typer.Argument(..., help="CSV, Parquet or JSON Lines: request_id and "
                                                                     "label columns, or entity, time and label "
                                                                     "columns (--key entity+time)."),
           deployment: str = typer.Option(..., "--deployment", help="The deployment that answered the requests."),
           label: str = typer.Option("label", "--label", help="The label column."),
           row: str = typer.Option(None, "--row", help="Each label's row position in its request (from 0), for "
                                   "requests of several rows (--key request_id)."),
           key: str = typer.Option(None, "--key", help="request_id (default) or entity+time (default when --entity "
                                   "is given): each label goes to the latest prediction for its entity at or before "
                                   "its time."),
           entity: list[str] = typer.Option(None, "--entity", help="An entity column, as the requests' inputs name "
                                            "it (e.g. listing_id); repeat (or comma-separate) for several."),
           time: str = typer.Option(None, "--time", help="The labels' time column (ISO times; naive is UTC)."),
           tolerance: str = typer.Option(None, "--tolerance", help="How far before its time a label's prediction "
                                         "may be: 30m, 12h, 1d, 2w (default 30d)."),
           reason: str = REASON, fmt: str = FORMAT) -> None:
    """Append labels to the prediction log as feedback, by request id or by entity and time, in one commit."""
    _check_format(fmt)
    entities = [e.strip() for given in entity or [] for e in given.split(",") if e.strip()] or None
    done = state(ctx).workspace().monitors.ingest_labels(deployment, path, label=label, row=row, key=key,
                                                         entities=entities, time=time, tolerance=tolerance,
                                                         reason=reason)
    if fmt == "json":
        print_json(done)
        return
    text = f"{done['requests']} request(s) labelled for {deployment}"
    if "matched" in done:
        text += f": {done['matched']} label(s) matched, {done['unmatched']} matched no prediction"
        text += f", {done['superseded']} superseded by a later label for the same row" if done["superseded"] else ""
    console.print(text + (f"; {done['skipped_missing']} row(s) without a label skipped" if done["skipped_missing"]
                          else ""), markup=False, soft_wrap=True)
