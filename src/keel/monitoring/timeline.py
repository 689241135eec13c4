"""An incident's timeline: one chronological view of what happened to a deployment between two times — the material
for a blameless post-mortem.

Events come from the stores that already record them, nothing is recomputed from guesses:

- ``deployment``: every version of the deployment's policy made in the range (create, shadow, canary, advance,
  promote, rollback, pause, ...), with who and why (``deployment_versions``);
- ``registry``: the audit log's model and gate events (registrations, alias moves, promotions, approvals, gate runs
  and overrides) of every model name the deployment served or routed to in the range, any version of it;
- ``data`` / ``features``: every table version and feature view version committed in the range (the prediction
  log's own commits left out), each marked ``upstream`` when its table or view feeds, through the lineage graph, a
  model version the deployment served: a post-mortem wants the data changes that could matter, and a change to
  an unrelated table beside them is cheap context that rules it out;
- ``alert``: alert events (firing, resolved) of the deployment's monitors;
- ``fallbacks`` / ``latency``: spikes in the prediction log. The deployment's primary rows are cut into fixed
  buckets (1/60 of the range, at least a minute) by one DuckDB query; a bucket with at least ``MIN_REQUESTS``
  requests spikes when its fallback rate exceeds twice the range's (and 1 %), or half its requests fell back, or
  its p99 latency exceeds twice the median of the buckets' p99s. Consecutive spiking buckets are one event.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from keel.errors import InvalidInput
from keel.lineage import LineageService
from keel.serving.feedback import LOG_TABLE
from keel.serving.model import DeploymentVersion
from keel.serving.report import parse_since
from keel.serving.service import BASELINE, DeploymentService
from keel.storage.db import Database
from keel.storage.schema import audit_log, feature_view_versions, monitor_alerts, monitors, table_versions
from keel.storage.tables import query_arrow

__all__ = ["KINDS", "Timeline", "TimelineEvent", "build_timeline", "parse_range"]

KINDS = ("deployment", "registry", "data", "features", "alert", "fallbacks", "latency")
BUCKETS = 60  # a range is cut into this many buckets ...
MIN_BUCKET_S = 60.0  # ... of at least a minute
MIN_REQUESTS = 5  # a bucket with fewer requests never spikes: one slow request is not a latency spike
FALLBACK_FACTOR, FALLBACK_FLOOR, FALLBACK_MAJORITY = 2.0, 0.01, 0.5
LATENCY_FACTOR = 2.0
LINEAGE_DEPTH = 8  # model version <- run <- split / training set <- table / feature view versions
MAX_EVENTS = 10_000  # per source: a timeline is read by a person


@dataclass(frozen=True)
class TimelineEvent:
    """One thing that happened: when, what kind, to what (a ref), in one line, and its particulars."""

    at: datetime
    kind: str
    subject: str
    summary: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["at"] = self.at.isoformat()
        return out


@dataclass(frozen=True)
class Timeline:
    """A deployment's events between ``start`` and ``end``, oldest first; the policy versions in effect over the
    range; and the range's traffic (requests, fallback rate, median p99) the spikes are measured against."""

    deployment: str
    start: datetime
    end: datetime
    versions: list[int]
    models: list[str]
    traffic: dict[str, Any]
    events: list[TimelineEvent]

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]

    def to_dict(self) -> dict[str, Any]:
        return {"deployment": self.deployment, "start": self.start.isoformat(), "end": self.end.isoformat(),
                "versions": list(self.versions), "models": list(self.models), "traffic": dict(self.traffic),
                "events": [e.to_dict() for e in self.events]}


def parse_range(start: datetime | str, end: datetime | str | None, now: datetime | None = None
                ) -> tuple[datetime, datetime]:
    """``start`` and ``end`` as UTC times: datetimes, ISO texts or durations back from now (``6h``); ``end``
    defaults to now, and an end in the future is now."""
    now = now or datetime.now(UTC)
    first = _time(start, now, "--from")
    if first > now:
        raise InvalidInput(f"--from {first.isoformat()} is in the future (now is {now.isoformat()})")
    last = now if end is None else min(_time(end, now, "--to"), now)
    if first >= last:
        raise InvalidInput(f"--from {first.isoformat()} is not before --to {last.isoformat()}: give the start "
                           "first")
    return first, last


def _time(value: datetime | str, now: datetime, option: str) -> datetime:
    try:
        return parse_since(value, now)  # a duration counts back from now; an ISO time up to now
    except InvalidInput:
        pass
    try:  # a duration always reads against now: what reads only against a far future is an ISO time after now
        return parse_since(value, datetime(9999, 1, 1, tzinfo=UTC))
    except InvalidInput:
        return _fail(value, option)


def _fail(value: Any, option: str) -> datetime:
    raise InvalidInput(f"{option} {value!r}: give an ISO time (2024-05-01T00:00Z) or a duration back from now "
                       "(30m, 6h, 7d)")


def build_timeline(db: Database, deployments: DeploymentService, lineage: LineageService,
                   trained_on: Callable[[str], str | None], deployment: str, start: datetime, end: datetime
                   ) -> Timeline:
    """Every source's events of ``deployment`` in [start, end], sorted by time (ties: in ``KINDS`` order);
    ``trained_on(version)``: the data ref a model version's run was fitted on, if any."""
    history = deployments.history(deployment)  # NotFound names `keel deploy list`
    covering = [v for v in history if v.at <= end]
    before = [v for v in covering if v.at <= start]
    covering = before[-1:] + [v for v in covering if v.at > start]
    models = sorted({m for v in covering for m in _models(v)})
    events = [_deployment_event(v) for v in covering if v.at >= start]
    upstream = _upstream_names(lineage, trained_on, models)
    with db.read() as conn:
        events += _registry_events(conn, sorted({m.split("/")[0] for m in models}), start, end)
        events += _data_events(conn, upstream, start, end)
        events += _alert_events(conn, deployment, start, end)
    spikes, traffic = _spikes(deployments, deployment, start, end)
    events += spikes
    order = {k: i for i, k in enumerate(KINDS)}
    events.sort(key=lambda e: (e.at, order.get(e.kind, len(order)), e.subject))
    return Timeline(deployment, start, end, [v.version for v in covering], models, traffic, events)


def _models(version: DeploymentVersion) -> set[str]:
    policy = version.policy
    return {a["model"] for a in policy["arms"]} | set(policy.get("shadows", [])) | \
        {f for f in policy.get("fallbacks", []) if f != BASELINE}


def _deployment_event(version: DeploymentVersion) -> TimelineEvent:
    policy = version.policy
    arms = ", ".join(f"{a['name']}={a['model']}" for a in policy["arms"])
    if policy["kind"] == "canary":
        arms += f" at {float(policy.get('step', 0.0)):.0%}"
    if policy.get("shadows"):
        arms += "; shadows " + ", ".join(policy["shadows"])
    summary = f"{version.action} by {version.by}: {policy['kind']} {arms}" + \
        (f" ({version.state})" if version.state != "active" else "") + \
        (f" — {version.reason}" if version.reason else "")
    return TimelineEvent(version.at, "deployment", f"deployment:{version.deployment}@{version.version}", summary,
                         {"action": version.action, "by": version.by, "reason": version.reason,
                          "state": version.state, "policy": policy})


def _registry_events(conn: sa.Connection, names: list[str], start: datetime, end: datetime) -> list[TimelineEvent]:
    """Model and gate audit rows of ``names`` (any version) in the range."""
    if not names:
        return []
    targets = sa.or_(*[sa.or_(audit_log.c.target == f"model:{n}", audit_log.c.target.startswith(f"model:{n}/"))
                       for n in names])
    rows = conn.execute(sa.select(audit_log).where(
        audit_log.c.at >= start, audit_log.c.at <= end, targets,
        sa.or_(audit_log.c.action.startswith("model."), audit_log.c.action.startswith("gates.")))
        .order_by(audit_log.c.id).limit(MAX_EVENTS)).all()
    return [TimelineEvent(r.at, "registry", r.target, _registry_summary(r.action, r.actor, r.reason, r.details or {}),
                          {"action": r.action, "by": r.actor, "reason": r.reason, **(r.details or {})})
            for r in rows]


def _registry_summary(action: str, actor: str, reason: str | None, details: dict[str, Any]) -> str:
    words = {"model.register": "registered", "model.approve": "approved", "model.promote": "promoted",
             "model.promote.override": "promoted WITHOUT approval (override)", "model.alias": "alias moved",
             "model.alias.remove": "alias removed", "model.card": "card updated", "gates.run": "gates ran",
             "gates.override": "failed gates OVERRIDDEN", "gates.checklist": "gate checklist set"}
    text = f"{words.get(action, action)} by {actor}"
    if "alias" in details:
        text += f": {details['alias']} {details.get('from')} → {details.get('to')}"
    elif action == "model.approve":
        text += f" for {details.get('environment', 'production')}"
    elif action.startswith("gates.") and "status" in details:
        text += f": {details['status']}"
    if details.get("failed"):
        text += f" (failed: {', '.join(map(str, details['failed']))})"
    return text + (f" — {reason}" if reason else "")


def _upstream_names(lineage: LineageService, trained_on: Callable[[str], str | None], models: list[str]
                    ) -> dict[str, set[str]]:
    """Per table or feature-view name (``table:toy``, ``features:hosts``), the served versions it feeds: through
    the lineage graph, and through the data each version's run was fitted on (its ``fit.data``)."""
    found: dict[str, set[str]] = {}
    for model in models:
        refs = lineage.upstream(f"model:{model}", depth=LINEAGE_DEPTH).refs()
        data = trained_on(model)
        if data and data != "frames":
            data = data if ":" in data else f"table:{data}"
            refs += [data, *lineage.upstream(data, depth=LINEAGE_DEPTH).refs()]
        for ref in refs:
            kind, _, rest = ref.partition(":")
            if kind in ("table", "features") and rest:
                found.setdefault(f"{kind}:{rest.split('@')[0]}", set()).add(model)
    return found


def _data_events(conn: sa.Connection, upstream: dict[str, set[str]], start: datetime, end: datetime
                 ) -> list[TimelineEvent]:
    events = []
    tables = conn.execute(sa.select(table_versions).where(
        table_versions.c.committed_at >= start, table_versions.c.committed_at <= end,
        table_versions.c.table_name != LOG_TABLE).order_by(table_versions.c.id).limit(MAX_EVENTS)).all()
    for r in tables:
        feeds = sorted(upstream.get(f"table:{r.table_name}", ()))
        summary = f"{r.operation} by {r.created_by}: {r.rows_added:,} row(s) added, {r.row_count:,} in all" + \
            (f"; upstream of {', '.join(feeds)}" if feeds else "")
        events.append(TimelineEvent(r.committed_at, "data", f"table:{r.table_name}@{r.version}", summary,
                                    {"operation": r.operation, "by": r.created_by, "rows_added": r.rows_added,
                                     "rows": r.row_count, "source": r.source_name, "upstream": bool(feeds),
                                     "feeds": feeds}))
    views = conn.execute(sa.select(feature_view_versions).where(
        feature_view_versions.c.created_at >= start, feature_view_versions.c.created_at <= end)
        .order_by(feature_view_versions.c.created_at).limit(MAX_EVENTS)).all()
    for r in views:
        feeds = sorted(upstream.get(f"features:{r.view}", ()))
        summary = f"new {r.kind} feature view version by {r.created_by}" + \
            (f"; upstream of {', '.join(feeds)}" if feeds else "")
        events.append(TimelineEvent(r.created_at, "features", f"features:{r.view}@{r.version}", summary,
                                    {"by": r.created_by, "fingerprint": r.fingerprint, "upstream": bool(feeds),
                                     "feeds": feeds}))
    return events


def _alert_events(conn: sa.Connection, deployment: str, start: datetime, end: datetime) -> list[TimelineEvent]:
    """Alert events of every monitor of the deployment, deleted monitors' too (they fired when they did)."""
    watching = sa.select(monitors.c.name).where(monitors.c.deployment == deployment).scalar_subquery()
    rows = conn.execute(sa.select(monitor_alerts).where(
        monitor_alerts.c.monitor.in_(watching), monitor_alerts.c.at >= start, monitor_alerts.c.at <= end)
        .order_by(monitor_alerts.c.at).limit(MAX_EVENTS)).all()
    return [TimelineEvent(r.at, "alert", f"monitor:{r.monitor}",
                          f"{r.state}: {r.rule}" + (f" (value {r.value:.4g})" if r.value is not None else ""),
                          {"id": r.id, "monitor": r.monitor, "report": f"monitor_report:{r.monitor}/{r.report}",
                           "rule": r.rule, "state": r.state, "value": r.value, "webhook": r.webhook})
            for r in rows]


_SPIKES = f"""
WITH b AS (
  SELECT (us - $start) // $width AS bucket, count(*) AS requests, count(reason) AS fallbacks,
         quantile_cont(latency_ms, 0.99) AS p99_ms, mode(reason) AS reason,
         mode(served_by) FILTER (WHERE reason IS NOT NULL) AS served_by
  FROM log GROUP BY bucket),
r AS (SELECT sum(fallbacks)::DOUBLE / sum(requests) AS range_rate, sum(requests)::BIGINT AS range_requests,
             median(p99_ms) FILTER (WHERE requests >= {MIN_REQUESTS}) AS range_p99 FROM b),
f AS (
  SELECT b.*, r.*, fallbacks::DOUBLE / requests AS rate,
         requests >= {MIN_REQUESTS} AND (fallbacks::DOUBLE / requests > greatest({FALLBACK_FACTOR} * range_rate,
           {FALLBACK_FLOOR}) OR fallbacks::DOUBLE / requests >= {FALLBACK_MAJORITY}) AS fell_back,
         requests >= {MIN_REQUESTS} AND p99_ms > {LATENCY_FACTOR} * range_p99 AS slow
  FROM b, r),
s AS (
  SELECT 'fallbacks' AS kind, * FROM f WHERE fell_back
  UNION ALL SELECT 'latency' AS kind, * FROM f WHERE slow),
i AS (SELECT *, bucket - row_number() OVER (PARTITION BY kind ORDER BY bucket) AS island FROM s)
SELECT kind, min(bucket) AS first, max(bucket) AS last, sum(requests)::BIGINT AS requests,
       sum(fallbacks)::BIGINT AS fallbacks, max(rate) AS max_rate, max(p99_ms) AS p99_ms, mode(reason) AS reason,
       mode(served_by) AS served_by, any_value(range_rate) AS range_rate, any_value(range_p99) AS range_p99
FROM i GROUP BY kind, island
UNION ALL
SELECT 'range', NULL, NULL, range_requests, NULL::BIGINT, range_rate, range_p99, NULL, NULL, range_rate, range_p99
FROM r
"""


def _spikes(deployments: DeploymentService, deployment: str, start: datetime, end: datetime
            ) -> tuple[list[TimelineEvent], dict[str, Any]]:
    """Fallback and latency spikes of the deployment's primary rows, and the range's traffic."""
    rows = deployments.log(deployment, start, end, columns=["at", "latency_ms", "reason", "served_by"])
    width = max(timedelta(seconds=MIN_BUCKET_S), (end - start) / BUCKETS)
    traffic: dict[str, Any] = {"requests": rows.num_rows, "fallback_rate": None, "median_p99_ms": None,
                               "bucket_s": width.total_seconds()}
    if rows.num_rows == 0:
        return [], traffic
    width_us = int(width / timedelta(microseconds=1))
    log = pa.table({"us": pc.cast(rows["at"], pa.int64()), "latency_ms": rows["latency_ms"],
                    "reason": rows["reason"], "served_by": rows["served_by"]})
    start_us = int((start - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(microseconds=1))
    found = query_arrow(_SPIKES.replace("$start", str(start_us)).replace("$width", str(width_us)),
                        log=log).to_pylist()
    events = []
    for spike in found:
        if spike["kind"] == "range":
            traffic.update(fallback_rate=spike["range_rate"], median_p99_ms=spike["range_p99"])
            continue
        at = start + width * spike["first"]
        until = min(end, start + width * (spike["last"] + 1))
        details = {"until": until.isoformat(), "requests": spike["requests"], "fallbacks": spike["fallbacks"],
                   "fallback_rate": spike["fallbacks"] / spike["requests"], "range_fallback_rate": spike["range_rate"],
                   "p99_ms": spike["p99_ms"], "range_median_p99_ms": spike["range_p99"],
                   "reason": spike["reason"], "served_by": spike["served_by"]}
        minutes = (until - at).total_seconds() / 60
        if spike["kind"] == "fallbacks":
            summary = (f"{details['fallback_rate']:.0%} of {spike['requests']:,} request(s) answered by a fallback "
                       f"over {minutes:.0f} min (range {spike['range_rate']:.1%})"
                       + (f"; served by {spike['served_by']}" if spike["served_by"] else "")
                       + (f": {_short(spike['reason'])}" if spike["reason"] else ""))
        else:
            summary = (f"p99 latency {spike['p99_ms']:.0f} ms over {minutes:.0f} min (median p99 "
                       f"{spike['range_p99']:.0f} ms), {spike['requests']:,} request(s)")
        events.append(TimelineEvent(at, spike["kind"], f"deployment:{deployment}", summary, details))
    return events, traffic


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 1] + "…"
