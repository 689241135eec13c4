"""Monitors (``ws.monitors``): a deployment's prediction log compared, window by window and slice by slice, with
a trusted baseline; every run stored as a numbered drift report with lineage to the deployment, the model version
and the prediction-log version it read.

The CLI, REST API and UI call exactly these methods.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from threadpoolctl import threadpool_limits

from keel.audit import AuditLog
from keel.data.readers import read_source_file
from keel.data.service import DataService
from keel.errors import Conflict, InvalidInput, NotFound
from keel.lineage import Edge, LineageService
from keel.logs import get_logger
from keel.models.service import ModelService
from keel.models.signature import Signature
from keel.monitoring.alerts import evaluate, parse_rule
from keel.monitoring.asof import label_window, match_labels, parse_tolerance, prepare_labels
from keel.monitoring.drift import dataset_drift
from keel.monitoring.infra import LOOKBACK
from keel.monitoring.kpis import kpi_specs, run_kpis, service_health
from keel.monitoring.labels import KEYS, feedback_log_rows, label_rows
from keel.monitoring.model import AlertEvent, DriftReport, Monitor
from keel.monitoring.performance import labelled_rows, performance, training_metrics
from keel.monitoring.reference import Baseline, store_baseline
from keel.monitoring.trace import build_trace, log_filter_for
from keel.monitoring.webhook import check_webhook, send_webhook
from keel.monitoring.window import LABEL, PREDICTION, ROW, parse_window, window_rows
from keel.refs import check_name
from keel.serving.baseline import read_train_part, training_source
from keel.serving.feedback import LOG_SCHEMA, LOG_TABLE, committed_log
from keel.serving.routing import HOLDOUT
from keel.serving.service import DeploymentService
from keel.storage.artifacts import ArtifactStore
from keel.storage.db import Database
from keel.storage.schema import monitor_alerts, monitor_reports, monitors
from keel.tracking.service import RunService

__all__ = ["MonitorService"]

log = get_logger("keel.monitoring")

MAX_SLICES = 5  # slice columns a monitor may have
MAX_SLICE_VALUES = 10  # per slice column, the window's most frequent values are reported


class MonitorService:
    """Create monitors, run them over windows of the prediction log, read their reports."""

    def __init__(self, db: Database, data: DataService, models: ModelService, runs: RunService,
                 deployments: DeploymentService, artifacts: ArtifactStore, lineage: LineageService, audit: AuditLog,
                 user: str, *, allow_private_webhooks: bool = False) -> None:
        self._db, self._data, self._models, self._runs = db, data, models, runs
        self._deployments, self._artifacts, self._lineage, self._audit = deployments, artifacts, lineage, audit
        self._user, self._allow_private = user, allow_private_webhooks

    # -- monitors ------------------------------------------------------------------------------------------

    def create(self, name: str, deployment: str, *, baseline: str = "training", window: str = "1d",
               slices: list[str] | None = None, methods: dict[str, str] | None = None,
               thresholds: dict[str, float] | None = None, share: float = 0.5, alerts: list[str] | None = None,
               webhook: str | None = None, kpis: dict[str, Any] | None = None, reason: str | None = None) -> Monitor:
        """A monitor of ``deployment``: ``baseline`` is ``training`` (the deployed version's train part), a table
        ref, or ``window:START..END`` of the deployment's own log; ``window`` is a run's default window;
        ``alerts``: rules (keel.monitoring.alerts) whose events go to ``webhook``; ``kpis``: {name: function of the
        window's rows, or "module:function"} (keel.monitoring.kpis)."""
        check_name(name, "monitor name")
        served = self._deployments.get(deployment)  # NotFound names `keel deploy list`
        slices = list(dict.fromkeys(slices or []))
        if len(slices) > MAX_SLICES:
            raise InvalidInput(f"at most {MAX_SLICES} slice columns; {len(slices)} given")
        parse_window(window)  # a bad window is refused now, not at the first run
        if baseline != "training" and not baseline.startswith("window:"):
            self._data.version(baseline)  # NotFound: the table does not exist
        elif baseline.startswith("window:"):
            parse_window(baseline.removeprefix("window:"))
        if not 0 < share <= 1:
            raise InvalidInput(f"share {share} must be in (0, 1]: the share of columns that must drift")
        for column, value in (thresholds or {}).items():
            if not isinstance(value, int | float) or value != value:
                raise InvalidInput(f"threshold of {column!r} must be a number, not {value!r}")
        rules = [parse_rule(r).text for r in alerts or []]
        if webhook is not None:
            check_webhook(webhook, allow_private=self._allow_private)
        monitor = Monitor(name, served.name, baseline, window, slices, dict(methods or {}),
                          {k: float(v) for k, v in (thresholds or {}).items()}, float(share), rules, webhook,
                          kpi_specs(kpis), 0, datetime.now(UTC), self._user)
        self._baseline(monitor, self._model_of(served.name, None))  # computed and stored now: checks columns too

        def insert(conn: sa.Connection) -> None:
            row = conn.execute(sa.select(monitors.c.deleted_at).where(monitors.c.name == name)).first()
            if row is not None and row.deleted_at is None:
                raise Conflict(f"monitor {name!r} exists; `keel monitor delete {name}` first, or pick another name")
            if row is not None:
                conn.execute(monitors.delete().where(monitors.c.name == name))  # a deleted one's name is free
            conn.execute(monitors.insert().values(name=name, deployment=served.name, spec=monitor.spec(),
                                                  latest_report=0, created_at=monitor.created_at,
                                                  created_by=self._user))
            self._lineage.add(conn, [Edge(served.ref, monitor.ref, "monitored_by")])
            self._audit.record(conn, actor=self._user, action="monitor.create", target=monitor.ref, reason=reason,
                               details=monitor.spec())

        self._db.retrying(insert)
        return self.get(name)

    def get(self, name: str) -> Monitor:
        with self._db.read() as conn:
            row = conn.execute(sa.select(monitors).where(monitors.c.name == name)).first()
        if row is None or row.deleted_at is not None:
            raise NotFound(f"no monitor {name!r}; `keel monitor list` lists them")
        return _monitor(row)

    def list(self, deployment: str | None = None) -> list[Monitor]:
        query = sa.select(monitors).where(monitors.c.deleted_at.is_(None)).order_by(monitors.c.name)
        if deployment is not None:
            query = query.where(monitors.c.deployment == deployment)
        with self._db.read() as conn:
            return [_monitor(r) for r in conn.execute(query)]

    def delete(self, name: str, *, reason: str | None = None) -> None:
        monitor = self.get(name)

        def write(conn: sa.Connection) -> None:
            conn.execute(monitors.update().where(monitors.c.name == name).values(deleted_at=datetime.now(UTC)))
            self._audit.record(conn, actor=self._user, action="monitor.delete", target=monitor.ref, reason=reason)

        self._db.retrying(write)

    # -- runs and reports ----------------------------------------------------------------------------------

    def run(self, name: str, *, window: str | None = None, now: datetime | None = None) -> DriftReport:
        """Compare one window of the deployment's log with the baseline: every watched column, the prediction,
        and each slice's most frequent values; stored as the monitor's next report."""
        started = time.perf_counter()
        monitor = self.get(name)
        start, end = parse_window(window or monitor.window, now)
        info = committed_log(self._data)
        log_version = info.version if info is not None else None
        raw = self._deployments.log(monitor.deployment, start, end, version=log_version,
                                    columns=["request_id", "at", "served_by", "arm", "inputs", "output", "latency_ms",
                                             "reason"])
        if raw.num_rows:  # the holdout's answers are the baseline's, not the model's: they are not watched
            raw = raw.filter(pc.fill_null(pc.not_equal(raw["arm"], HOLDOUT), True))
        model = self._model_of(monitor.deployment, raw)
        signature = self._signature(model)
        columns = {c.name: c.type for c in signature.inputs}
        prediction = signature.outputs[0].type if len(signature.outputs) == 1 else None
        rows = window_rows(raw, columns, prediction)
        baseline = self._baseline(monitor, model)
        with threadpool_limits(1):  # BLAS threads split each column's dot products and slow the window 1.6-2.7x
            results = self._compare(monitor, baseline, rows)
        results["performance"], labelled = self._performance(monitor, model, signature, rows, start, log_version)
        results["label"] = _label_drift(monitor, baseline, labelled)
        health = self._deployments.log(None, start - LOOKBACK, end, kinds=("health",), version=log_version,
                                       columns=["at", "status", "output"])  # the serving processes' heartbeats
        results["service"] = service_health(raw, start, end, health, monitor.deployment)
        if monitor.kpis:
            frame = labelled.drop_columns([c for c in ("request_id", "served_by", "arm", ROW)
                                           if c in labelled.column_names]).to_pandas()
            results["kpis"] = run_kpis(monitor.kpis, frame)
        status = "no_data" if rows.num_rows == 0 else "ok"
        drifted = bool(results["overall"].get("drifted")) or bool(results.get("prediction", {}).get("drifted"))
        rules = [parse_rule(r) for r in monitor.alerts]
        events: list[dict[str, Any]] = []
        if rules:
            earlier = self.reports(monitor.name, limit=max(r.windows for r in rules)) if monitor.latest_report else []
            results["alerts"], events = evaluate(rules, [(results, rows.num_rows)] +
                                                 [(r.results, r.rows) for r in earlier],
                                                 earlier[0].results.get("alerts", []) if earlier else [])
        deployment = self._deployments.get(monitor.deployment)
        report = self._store(monitor, start, end, status, drifted and status == "ok", rows.num_rows, model,
                             deployment.current.version, log_version, baseline.key, results,
                             time.perf_counter() - started)
        self._raise_alerts(monitor, report, events)
        return report

    def alerts(self, name: str | None = None, *, limit: int = 100) -> list[AlertEvent]:
        """Alert events (a rule starting or stopping to hold), newest first; of one monitor or all."""
        query = sa.select(monitor_alerts).order_by(monitor_alerts.c.at.desc()).limit(limit)
        if name is not None:
            self.get(name)
            query = query.where(monitor_alerts.c.monitor == name)
        with self._db.read() as conn:
            return [AlertEvent(r.id, r.monitor, r.report, r.rule, r.state, r.value, r.webhook, r.at)
                    for r in conn.execute(query)]

    def _raise_alerts(self, monitor: Monitor, report: DriftReport, events: list[dict[str, Any]]) -> None:
        """Store each event, log it, and POST it to the monitor's webhook (a failing webhook is recorded, never
        fails the run)."""
        for event in events:
            payload = {"monitor": monitor.name, "deployment": monitor.deployment, "report": report.ref,
                       "model": report.model, "window": [report.window_start, report.window_end], **event}
            delivery = send_webhook(monitor.webhook, payload, allow_private=self._allow_private) \
                if monitor.webhook else None
            row = {"id": uuid.uuid4().hex, "monitor": monitor.name, "report": report.number, "rule": event["rule"],
                   "state": event["state"], "value": event["value"], "webhook": delivery, "at": datetime.now(UTC)}
            with self._db.transaction() as conn:
                conn.execute(monitor_alerts.insert().values(**row))
            log.warning("monitor.alert", monitor=monitor.name, deployment=monitor.deployment, rule=event["rule"],
                        state=event["state"], value=event["value"], report=report.number, webhook=delivery)

    def reports(self, name: str, *, limit: int = 100) -> list[DriftReport]:
        """The monitor's reports, newest first."""
        self.get(name)
        with self._db.read() as conn:
            found = conn.execute(sa.select(monitor_reports).where(monitor_reports.c.monitor == name)
                                 .order_by(monitor_reports.c.number.desc()).limit(limit))
            return [_report(r) for r in found]

    def report(self, name: str, number: int | None = None) -> DriftReport:
        """One report (default: the latest)."""
        monitor = self.get(name)
        number = number if number is not None else monitor.latest_report
        with self._db.read() as conn:
            row = conn.execute(sa.select(monitor_reports).where(monitor_reports.c.monitor == name,
                                                                monitor_reports.c.number == number)).first()
        if row is None:
            raise NotFound(f"monitor {name!r} has no report {number}; `keel monitor run {name}` makes one"
                           if number else f"monitor {name!r} has no report yet; `keel monitor run {name}` makes one")
        return _report(row)

    def html(self, name: str, *, number: int | None = None, history: int = 50) -> str:
        """The monitor as one self-contained HTML page (keel.monitoring.html): the chosen report (default the
        latest) per column, drift and performance over its last ``history`` reports, the slice heat map, alerts."""
        from keel.monitoring.html import monitor_page  # imported when asked: the page is not the hot path

        return monitor_page(self, name, number=number, history=history)

    def ingest_labels(self, deployment: str, source: str | Path | pa.Table | Any, *, label: str = "label",
                      row: str | None = None, key: str | None = None, entities: list[str] | None = None,
                      time: str | None = None, tolerance: str | timedelta | None = None,
                      reason: str | None = None) -> dict[str, Any]:
        """Labels for answered requests, in bulk: a CSV / Parquet / JSON Lines file (or a table) appended to the
        prediction log as feedback in one commit; the monitors' performance joins them.

        ``key="request_id"`` (the default): ``request_id`` and ``label`` columns (``row``: each label's position
        in its request). ``key="entity+time"`` (implied by ``entities``): the ``entities`` columns, a ``time``
        column and the label; each label goes to the deployment's latest prediction for its entity made at or
        before its time, at most ``tolerance`` (default 30d) earlier; labels that match none are counted as
        ``unmatched``, not written."""
        key = key or ("entity+time" if entities or time else "request_id")
        if key not in KEYS:
            raise InvalidInput(f"unknown label key {key!r}; use request_id or entity+time")
        if key == "request_id" and (entities or time or tolerance is not None):
            raise InvalidInput("entities, time and tolerance go with --key entity+time, not --key request_id")
        if key == "entity+time" and row:
            raise InvalidInput("--row goes with --key request_id: with entity+time the match finds each label's row")
        if key == "entity+time" and not time:
            raise InvalidInput("--key entity+time needs the labels' time column: --time COLUMN")
        self._deployments.get(deployment)
        if isinstance(source, str | Path):
            table = read_source_file(source).table
        elif isinstance(source, pa.Table):
            table = source
        else:
            table = pa.Table.from_pandas(source, preserve_index=False)
        counts: dict[str, Any] = {}
        if key == "request_id":
            rows, skipped = label_rows(table, deployment, label=label, row=row)
            counts["skipped_missing"] = skipped
        else:
            within = parse_tolerance(tolerance)
            prepared = prepare_labels(table, list(entities or []), time or "", label)
            log_rows = LOG_SCHEMA.empty_table().select(["request_id", "at", "inputs"])
            if prepared.num_rows:
                since, until = label_window(prepared, within)
                log_rows = self._deployments.log(deployment, since, until, columns=["request_id", "at", "inputs"])
            grouped, counts = match_labels(prepared, log_rows, list(entities or []), within)
            rows = feedback_log_rows(grouped, deployment)
            counts = {"key": key, **counts}
        if rows.num_rows:
            info = committed_log(self._data)
            rows = rows.select([c for c in rows.column_names if info is None or c in info.schema])
            self._data.write_batches([rows], LOG_TABLE, reason=reason or f"labels for deployment {deployment}")
        log.info("labels.ingested", deployment=deployment, requests=rows.num_rows, **counts)
        return {"deployment": deployment, "requests": rows.num_rows, **counts}

    # -- observability -------------------------------------------------------------------------------------

    def trace(self, request_id: str) -> dict[str, Any]:
        """One prediction reconstructed: request, looked-up features, route, the version that answered with its
        training run and data, output, latency, fallback, shadows and feedback (keel.monitoring.trace)."""
        info = committed_log(self._data)
        if info is None:
            raise NotFound("nothing has been logged yet: `keel serve` logs every prediction it answers")
        rows = self._data.read_arrow(f"{LOG_TABLE}@{info.version}", where=log_filter_for(request_id))
        primary = [r for r in rows.to_pylist() if r["kind"] == "primary"]
        model = self._model_story(primary[0]["served_by"]) if primary else None
        deployment = self._policy_then(primary[0]["deployment"], primary[0]["at"]) if primary else None
        return build_trace(request_id, rows, model=model, deployment=deployment, log_version=info.version)

    def query_log(self, where: str | None = None, *, columns: list[str] | None = None,
                  limit: int = 1000, version: int | None = None) -> pa.Table:
        """Rows of the prediction log matching ``where`` (DuckDB SQL over any of its columns, e.g.
        ``deployment = 'price' and latency_ms > 50``), newest first, at most ``limit``; from the log table's
        ``version`` (default: its latest)."""
        if not 1 <= limit <= 1_000_000:
            raise InvalidInput(f"limit {limit} must be between 1 and 1,000,000")
        unknown = [c for c in columns or [] if c not in LOG_SCHEMA.names]
        if unknown:
            raise InvalidInput(f"the prediction log has no column(s) {', '.join(unknown)}; it has "
                               f"{', '.join(LOG_SCHEMA.names)}")
        latest = committed_log(self._data)
        if latest is None:
            return LOG_SCHEMA.empty_table().select(columns or LOG_SCHEMA.names)
        found = self._data.read_arrow(f"{LOG_TABLE}@{latest.version if version is None else version}",
                                      columns=columns, where=where or None)
        if "at" in found.column_names:
            found = found.sort_by([("at", "descending")])
        return found.slice(0, limit)

    def _model_story(self, ref: str | None) -> dict[str, Any] | None:
        """The version that answered: its run, what it was trained on, and its lineage upstream."""
        if not ref or ref == "baseline":
            return {"version": ref, "note": "the deployment's baseline constant answered"} if ref else None
        try:
            version = self._models.version(ref)
        except NotFound:
            return {"version": ref, "note": "this version is no longer in the registry"}
        tags = self._runs.get(version.run_id).tags if version.run_id else {}
        upstream = self._lineage.upstream(version.ref, depth=3).refs()
        trained_on = tags.get("fit.data")
        if trained_on and trained_on != "frames":  # the data's own history: table versions the split was cut from
            data = trained_on if ":" in trained_on else f"table:{trained_on}"
            upstream += [data, *self._lineage.upstream(data, depth=3).refs()]
        return {"version": version.name, "run": version.run_id, "flavor": version.flavor,
                "trained_on": trained_on, "label": tags.get("fit.label"),
                "upstream": list(dict.fromkeys(r for r in upstream if r != version.ref))}

    def _policy_then(self, deployment: str, at: datetime) -> dict[str, Any] | None:
        """The deployment's policy version in effect at ``at``."""
        try:
            history = self._deployments.history(deployment)
        except NotFound:
            return None
        then = [v for v in history if v.at <= at] or history[:1]
        return then[-1].to_dict() if then else None

    # -- internals -------------------------------------------------------------------------------------------

    def _model_of(self, deployment: str, raw: pa.Table | None) -> str:
        """The version a window is judged for: the one that answered most of its rows, else the deployment's
        primary."""
        if raw is not None and raw.num_rows:
            counts = pc.value_counts(raw["served_by"]).to_pylist()
            counts = [c for c in counts if c["values"] and c["values"] != "baseline"]
            if counts:
                return str(max(counts, key=lambda c: c["counts"])["values"])
        return str(self._deployments.get(deployment).current.policy["arms"][0]["model"])

    def _signature(self, model: str) -> Signature:
        version = self._models.version(model)
        if not version.signature or not version.signature.get("inputs"):
            raise InvalidInput(f"{version.name} has no signature: keel cannot tell which inputs to watch; register "
                               "it with an input example")
        return Signature.from_dict(version.signature)

    def _baseline(self, monitor: Monitor, model: str) -> Baseline:
        signature = self._signature(model)
        columns = {c.name: c.type for c in signature.inputs}
        label = None
        if monitor.baseline == "training":
            trained = training_source(self._models, self._runs, model, hint="give the monitor a baseline table "
                                      "(--baseline TABLE) or a window of the log (--baseline window:START..END)")
            data, label = trained["data"], trained["label"]
            wanted = list(columns) + ([label] if label and label not in columns else [])

            def frame() -> Any:
                return read_train_part(self._data, data, wanted)

            source = f"{data}#train"  # the sketch's key
        elif monitor.baseline.startswith("window:"):
            start, end = parse_window(monitor.baseline.removeprefix("window:"))
            source = f"log:{monitor.deployment}:{start.isoformat()}..{end.isoformat()}"

            def frame() -> Any:
                raw = self._deployments.log(monitor.deployment, start, end,
                                            columns=["request_id", "at", "served_by", "arm", "inputs", "output"])
                prediction = signature.outputs[0].type if len(signature.outputs) == 1 else None
                return window_rows(raw, columns, prediction).drop_columns(["request_id", "at", "served_by", "arm"]
                                                                          ).to_pandas()
        else:
            source = self._data.version(monitor.baseline).ref

            def frame() -> Any:
                return self._data.read(source.removeprefix("table:"), columns=None)

        def predict(rows: Any) -> Any:
            return self._models.load(model).predict(rows)

        return store_baseline(self._db, self._artifacts, source=source, model=model, columns=columns,
                              slices=monitor.slices, frame=frame,
                              predict=None if monitor.baseline.startswith("window:") else predict, label=label)

    def _performance(self, monitor: Monitor, model: str, signature: Signature, rows: pa.Table, start: datetime,
                     log_version: int | None) -> tuple[dict[str, Any], pa.Table]:
        """The window's labelled rows scored, beside the metrics the version's run recorded at training time; and
        the window's rows with their labels (null where none came). Labels may arrive any time after the window:
        every feedback since its start is joined."""
        if len(signature.outputs) != 1:
            return {"status": "not_scored", "reason": "the model's output is not one value per row"}, rows
        version = self._models.version(model)
        run = self._runs.get(version.run_id) if version.run_id else None
        task = (run.tags.get("fit.task") if run else None) or \
            ("regression" if signature.outputs[0].type == "float" else "classification")
        feedback = self._deployments.log(monitor.deployment, start, None, kinds=("feedback",), version=log_version,
                                         columns=["request_id", "at", "output"])
        labelled, unmatched = labelled_rows(rows, feedback, signature.outputs[0].type)
        found = performance(labelled, task, monitor.slices, training_metrics(run.metrics if run else {}, task))
        found["unmatched_labels"] = unmatched
        return found, labelled

    def _compare(self, monitor: Monitor, baseline: Baseline, rows: pa.Table) -> dict[str, Any]:
        options = {"methods": monitor.methods or None, "thresholds": monitor.thresholds or None,
                   "share": monitor.share}
        features = rows.select([c for c in rows.column_names if c in baseline.overall.columns
                                and c not in (PREDICTION, LABEL)])
        overall = dataset_drift(_inputs(baseline.overall), features, **options)
        results: dict[str, Any] = {"overall": overall.to_dict(), "notes": list(baseline.notes), "slices": {}}
        if PREDICTION in baseline.overall.columns and PREDICTION in rows.column_names:
            only = dataset_drift(_only(baseline.overall, PREDICTION), rows.select([PREDICTION]),
                                 methods={PREDICTION: monitor.methods[PREDICTION]} if PREDICTION in monitor.methods
                                 else None, share=1.0)
            results["prediction"] = only.to_dict()
        for column, references in baseline.slices.items():
            if column not in rows.column_names:
                continue
            values = pc.cast(rows[column], pa.string())
            top = [v["values"] for v in sorted(pc.value_counts(values).to_pylist(), key=lambda v: -v["counts"])
                   if v["values"] is not None][:MAX_SLICE_VALUES]
            results["slices"][column] = {}
            others = features.select([c for c in features.column_names if c != column])  # not itself: constant
            for value in top:
                subset = others.filter(pc.equal(values, value))
                if value not in references:
                    results["slices"][column][value] = {"status": "new_value", "rows": subset.num_rows,
                                                        "drifted": True, "drifted_columns": []}
                    continue
                drift = dataset_drift(_without(_inputs(references[value]), column), subset, **options)
                found = drift.to_dict()
                found["status"] = "no_data" if drift.no_data else "ok"
                found["drifted_columns"] = [c["column"] for c in found.get("columns", []) if c.get("drifted")]
                results["slices"][column][value] = found
        return results

    def _store(self, monitor: Monitor, start: datetime, end: datetime, status: str, drifted: bool, rows: int,
               model: str, deployment_version: int, log_version: int | None, baseline: str, results: dict[str, Any],
               duration_s: float) -> DriftReport:
        now = datetime.now(UTC)
        numbered: dict[str, int] = {}

        def write(conn: sa.Connection) -> None:
            latest = conn.execute(sa.select(monitors.c.latest_report).where(monitors.c.name == monitor.name)
                                  .with_for_update()).scalar_one()
            number = latest + 1
            updated = conn.execute(monitors.update().where(monitors.c.name == monitor.name,
                                                           monitors.c.latest_report == latest)
                                   .values(latest_report=number))
            if updated.rowcount != 1:
                raise Conflict(f"monitor {monitor.name!r} got another report at the same time; run it again")
            conn.execute(monitor_reports.insert().values(
                monitor=monitor.name, number=number, window_start=start, window_end=end, status=status,
                drifted=drifted, rows=rows, model=model, deployment_version=deployment_version,
                log_version=log_version, baseline=baseline, results=results, duration_s=duration_s, created_at=now,
                created_by=self._user))
            ref = f"monitor_report:{monitor.name}/{number}"
            edges = [Edge(monitor.ref, ref, "reported"), Edge(f"model:{model}", ref, "monitored_in"),
                     Edge(f"deployment:{monitor.deployment}@{deployment_version}", ref, "monitored_in")]
            if log_version is not None:
                edges.append(Edge(f"table:{LOG_TABLE}@{log_version}", ref, "input_of"))
            self._lineage.add(conn, edges)
            numbered["number"] = number

        self._db.retrying(write)
        report = self.report(monitor.name, numbered["number"])
        log.info("monitor.report", monitor=monitor.name, number=report.number, status=status, drifted=drifted,
                 rows=rows, model=model, columns=report.drifted_columns())
        return report


def _label_drift(monitor: Monitor, baseline: Baseline, labelled: pa.Table) -> dict[str, Any]:
    """The labels that arrived for the window against the training labels (label drift); a status when there
    are none yet or the baseline has no label reference (a table or a window of the log)."""
    if LABEL not in baseline.overall.columns:
        return {"status": "no_reference"}
    if LABEL not in labelled.column_names or labelled.num_rows == labelled[LABEL].null_count:
        return {"status": "no_labels"}
    arrived = labelled.select([LABEL]).filter(pc.is_valid(labelled[LABEL]))
    found = dataset_drift(_only(baseline.overall, LABEL), arrived, share=1.0,
                          methods={LABEL: monitor.methods[LABEL]} if LABEL in monitor.methods else None).to_dict()
    return {"status": "ok", **found}


def _inputs(sketch: Any) -> Any:
    """The sketch of the model's inputs only: without the prediction and label references."""
    return _without(_without(sketch, PREDICTION), LABEL)


def _without(sketch: Any, column: str) -> Any:
    return type(sketch)(columns={k: v for k, v in sketch.columns.items() if k != column}, rows=sketch.rows)


def _only(sketch: Any, column: str) -> Any:
    return type(sketch)(columns={column: sketch.columns[column]}, rows=sketch.rows)


def _monitor(row: Any) -> Monitor:
    spec = row.spec
    return Monitor(row.name, row.deployment, spec["baseline"], spec["window"], list(spec.get("slices", [])),
                   dict(spec.get("methods", {})), dict(spec.get("thresholds", {})), float(spec.get("share", 0.5)),
                   list(spec.get("alerts", [])), spec.get("webhook"), dict(spec.get("kpis", {})), row.latest_report,
                   row.created_at, row.created_by)


def _report(row: Any) -> DriftReport:
    return DriftReport(row.monitor, row.number, row.window_start, row.window_end, row.status, row.drifted, row.rows,
                       row.model, row.deployment_version, row.log_version, row.baseline, row.results, row.duration_s,
                       row.created_at, row.created_by)
