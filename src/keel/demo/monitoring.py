"""The demo's monitoring chapter: drift "happens more often than assumed".

Months 8-10 arrive, each ingested as a new version of the listings table and replayed against endpoint price in
requests of several listings, with the features the views knew at each listing's time. A monitor compares each
month with the training part of the deployed version; the hosts' true prices arrive later as labels. Month 8
brings a new neighbourhood (a new category), month 9 a 25% price rise (the features barely move, the errors do:
concept drift), month 10 an upstream break that drops ``bathrooms``. The alerts fire, ``keel trace`` explains the
worst prediction, and the HTML report is written.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from rich.console import Console

from keel.demo.features import REQUESTED
from keel.demo.generator import generate_listings, write_listings
from keel.demo.serving import Traffic, data_plane
from keel.workspace import Workspace

__all__ = ["ALERTS", "monitoring_chapter"]

MONITOR = "price-drift"
ALERTS = ["drift(neighbourhood) > 0.1", "missing(bathrooms) > 0.5", "rmse > 1.2 x training", "share_drifted >= 0.5"]
MONTHS = {8: "a new neighbourhood, Harbourfront", 9: "prices rise 25% (inflation)",
          10: "an upstream change drops bathrooms"}


def monitoring_chapter(ws: Workspace, split_ref: str, features: list[str], raw: Path, rows_per_month: int,
                       console: Console, step: Callable[[str], Any], table: Callable[..., None],
                       retraining: Any = None) -> dict[str, Any]:
    """Monitor, months 7-10 replayed, labels, alerts, a trace and the report; returns what the tests check.
    ``retraining`` (keel.demo.retraining.Retraining): attached before month 7, its scheduler ticked after each."""
    with step(f"Monitor endpoint price against its training data; alert on {'; '.join(ALERTS)}"):
        monitor = ws.monitors.create(MONITOR, "price", slices=["room_type"], alerts=ALERTS,
                                     reason="watch the production endpoint")
    console.print(f"  {monitor.ref}: baseline = the train part of the version endpoint price serves")
    if retraining is not None:
        retraining.attach(monitor.name)
    windows: list[dict[str, Any]] = []
    began = datetime.now(UTC)
    with data_plane(ws) as url:
        traffic = Traffic(url, [], [])
        with step("Month 7 replayed: the quiet month the model was tested on"):
            windows.append(_month(ws, traffic, ws.data.read_split(split_ref, "test"), features, 7, "as in training"))
        if retraining is not None:
            retraining.after_month(7)
        for month, what in MONTHS.items():
            with step(f"Month {month} arrives ({what}): ingested, then served"):
                frame = _arrive(ws, raw, month, rows_per_month)
                windows.append(_month(ws, traffic, frame, features, month, what))
            if retraining is not None:
                retraining.after_month(month)
    table(f"keel monitor reports {MONITOR}", ["month", "what changed", "rows", "drifted columns",
                                              "rmse (training)", "alerts firing"],
          [(w["month"], w["what"], w["report"].rows, ", ".join(w["report"].drifted_columns()) or "none",
            _rmse(w["report"]), ", ".join(w["firing"]) or "-") for w in windows])
    console.print("  month 7 already moves the host and neighbourhood counts: they grow with the platform's history "
                  "(the train part starts in month 1, with none), a drift the monitor rightly shows; no alert fires")
    fired = [a for a in reversed(ws.monitors.alerts(MONITOR)) if a.state == "firing"]
    worst = max(windows[1:], key=lambda w: w["worst"][1])
    with step(f"keel trace {worst['worst'][0]}: the worst prediction of month {worst['month']}, explained"):
        trace = ws.monitors.trace(worst["worst"][0])
    _print_trace(console, trace, worst)
    with step("keel incident timeline, then keel incident create: the months on one page for the post-mortem"):
        timeline = ws.incidents.timeline("price", began)
    incident = _incident(ws, timeline, began, console, table)
    with step("keel monitor report price-drift --out reports/price-drift.html"):
        out = raw.parent / "reports" / f"{MONITOR}.html"
        out.parent.mkdir(exist_ok=True)
        out.write_text(ws.monitors.html(MONITOR), encoding="utf-8")
    console.print(f"  {out} ({out.stat().st_size // 1024} KiB, opens offline): per-feature distributions, drift "
                  "over the months, the room-type heat map, performance and the alerts")
    return {"monitor": monitor.ref, "reports": [w["report"].number for w in windows],
            "drifted": {w["month"]: w["report"].drifted_columns() for w in windows},
            "alerts_fired": [a.rule for a in fired], "trace": trace["request_id"], "report_html": str(out),
            "incident": incident}


def _incident(ws: Workspace, timeline: Any, began: datetime, console: Console, table: Callable[..., None]) -> str:
    """The months as one timeline (data versions, alerts, ...), recorded as an incident with a note."""
    shown = [e for e in timeline.events if e.kind != "features"]
    table(f"keel incident timeline --deployment price --from {began:%H:%M:%S}", ["at (UTC)", "kind", "subject",
                                                                                   "what happened"],
          [(f"{e.at:%H:%M:%S}", e.kind, e.subject, e.summary[:90]) for e in shown])
    incident = ws.incidents.create("price", began, title="prices drift after month 8; errors up 20-70%",
                                   severity="high", note="inflation from month 9 is concept drift: retrain on months "
                                                         "8-10; the bathrooms column broke upstream in month 10")
    console.print(f"  {incident.ref}: recorded with its {len(timeline.events)} events and a note (`keel incident "
                  f"show {incident.id}`)")
    return incident.ref


def _arrive(ws: Workspace, raw: Path, month: int, rows_per_month: int) -> pd.DataFrame:
    """The month's listings as a new version of the table; the rows that kept their contract, with the features
    the views knew at each listing's time (what the app sends)."""
    path = write_listings(generate_listings([month], rows_per_month=rows_per_month, drift=True),
                          raw / f"listings_m{month}.parquet")
    version = ws.data.ingest(path, "listings", on_bad_rows="quarantine").version
    return ws.data.read_arrow(version.ref, where=f"listing_id >= {month * 1_000_000} AND "
                                                 f"listing_id < {(month + 1) * 1_000_000}").to_pandas()


def _month(ws: Workspace, traffic: Traffic, listings: pd.DataFrame, features: list[str], month: int,
           what: str) -> dict[str, Any]:
    """Serve the month's listings, send their true prices as labels, and run the monitor over exactly the
    requests of that month."""
    if "neighbourhood_stats__price_mean_30d" not in listings:
        listings = ws.features.training_set(listings, REQUESTED, timestamp="listed_at", store=False,
                                            full_names=True).to_pandas()
    start = datetime.now(UTC)
    answers = traffic.send_batches(listings[features], listings["listing_id"].tolist(), size=25)
    traffic.settle(ws)
    end = datetime.now(UTC) + timedelta(milliseconds=1)
    labels = pa.table({"request_id": answers["request_id"], "row": answers["row"],
                       "label": listings["price"].to_numpy(dtype=float)})
    ws.monitors.ingest_labels("price", labels, row="row", reason=f"month {month}'s booked prices")
    report = ws.monitors.run(MONITOR, window=f"{start.isoformat()}..{end.isoformat()}")
    firing = [a["rule"] for a in report.results.get("alerts", []) if a.get("firing")]
    errors = np.abs(np.asarray(answers["prediction"]) - listings["price"].to_numpy(dtype=float))
    errors[np.asarray(answers["arm"]) == "holdout"] = -1  # the baseline answered those: the model's worst is traced
    worst = int(np.argmax(errors))
    return {"month": month, "what": what, "report": report, "firing": firing,
            "worst": (answers["request_id"][worst], float(errors[worst]), int(answers["row"][worst]),
                      float(listings["price"].iloc[worst]))}


def _rmse(report: Any) -> str:
    performance = report.results.get("performance", {})
    rmse, training = performance.get("metrics", {}).get("rmse"), (performance.get("training") or {}).get("rmse")
    if rmse is None:
        return "no labels"
    return f"{rmse:.1f}" + (f" ({training:.1f})" if training is not None else "")


def _print_trace(console: Console, trace: dict[str, Any], worst: dict[str, Any]) -> None:
    request_id, error, row, label = worst["worst"]
    listing = (trace["request"] or [{}])[row] if isinstance(trace["request"], list) else {}
    model = trace.get("model") or {}
    console.print(f"  request {request_id} at {trace['at'][:19]}: row {row} of {len(trace['request'] or [])}, "
                  f"answered by {trace['route']['served_by']} (arm {trace['route']['arm']}, "
                  f"{trace['latency_ms']:.1f} ms, fallback: {trace['route']['fallback'] or 'none'})")
    console.print(f"  the listing: {listing.get('neighbourhood')}, {listing.get('room_type')}, "
                  f"{listing.get('bedrooms')} bedrooms, bathrooms {listing.get('bathrooms')}; predicted "
                  f"{_output(trace, row):.0f}, booked at {label:.0f} (off by {error:.0f})")
    data = [r for r in model.get("upstream", []) if r.startswith(("table:listings@", "file:"))]
    log = trace["log"]
    console.print(f"  the model: {model.get('version')}, fitted by run {model.get('run')} on "
                  f"{model.get('trained_on')}, from {', '.join(data[:3]) or 'its data'}; the log: "
                  f"{log['table']}@{log['version']}")


def _output(trace: dict[str, Any], row: int) -> float:
    output = trace["output"]
    values = output.get("predictions", output) if isinstance(output, dict) else output
    return float(values[row]) if isinstance(values, list) else float(values)
