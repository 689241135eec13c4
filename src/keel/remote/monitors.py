"""``ws.monitors`` over HTTP: the embedded ``MonitorService`` methods, returning the same records (``Monitor``,
``DriftReport``); the server computes baselines and runs the windows."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from keel.errors import InvalidInput
from keel.monitoring.model import AlertEvent, DriftReport, Monitor
from keel.remote.client import Client, join
from keel.remote.decode import decode, decode_list

__all__ = ["RemoteMonitorService", "query_remote_log"]


class RemoteMonitorService:
    """The monitors of a keel server."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def create(self, name: str, deployment: str, *, baseline: str = "training", window: str = "1d",
               slices: list[str] | None = None, methods: dict[str, str] | None = None,
               thresholds: dict[str, float] | None = None, share: float = 0.5, alerts: list[str] | None = None,
               webhook: str | None = None, kpis: dict[str, Any] | None = None, reason: str | None = None) -> Monitor:
        if kpis:
            raise InvalidInput("KPIs name Python code, which a keel server never imports for a request; create "
                               "this monitor from Python on the workspace's machine: keel.open(path).monitors.create("
                               "..., kpis=...)")
        body = {"name": name, "deployment": deployment, "baseline": baseline, "window": window,
                "slices": list(slices or []), "methods": dict(methods or {}), "thresholds": dict(thresholds or {}),
                "share": share, "alerts": list(alerts or []), "webhook": webhook, "reason": reason}
        return decode(Monitor, self._client.post("/monitors", body))

    def get(self, name: str) -> Monitor:
        return decode(Monitor, self._client.get(join("monitors", name)))

    def list(self, deployment: str | None = None) -> list[Monitor]:
        return decode_list(Monitor, self._client.get("/monitors", deployment=deployment))

    def delete(self, name: str, *, reason: str | None = None) -> None:
        self._client.delete(join("monitors", name), reason=reason)

    def run(self, name: str, *, window: str | None = None, now: datetime | None = None) -> DriftReport:
        if now is not None:
            raise InvalidInput("a remote monitor runs on the server's clock: give window=START..END instead of now=")
        return decode(DriftReport, self._client.post(join("monitors", name, "runs"), {"window": window}))

    def reports(self, name: str, *, limit: int = 100) -> list[DriftReport]:
        return decode_list(DriftReport, self._client.get(join("monitors", name, "reports"), limit=limit))

    def report(self, name: str, number: int | None = None) -> DriftReport:
        if number is None:
            found: Any = self._client.get(join("monitors", name, "reports"), limit=1)
            if not found:
                return decode(DriftReport, self._client.get(join("monitors", name, "reports", "0")))  # its 404
            return decode(DriftReport, found[0])
        return decode(DriftReport, self._client.get(join("monitors", name, "reports", str(number))))

    def alerts(self, name: str | None = None, *, limit: int = 100) -> list[AlertEvent]:
        return decode_list(AlertEvent, self._client.get("/alerts", monitor=name, limit=limit))

    def html(self, name: str, *, number: int | None = None, history: int = 50) -> str:
        """The monitor's self-contained HTML page, rendered here from the server's reports and alerts."""
        from keel.monitoring.html import monitor_page  # imported when asked, as embedded

        return monitor_page(self, name, number=number, history=history)

    def ingest_labels(self, deployment: str, source: Any, *, label: str = "label", row: str | None = None,
                      key: str | None = None, entities: list[str] | None = None, time: str | None = None,
                      tolerance: str | timedelta | None = None, reason: str | None = None) -> dict[str, Any]:
        """Labels from a CSV / Parquet / JSON Lines file (streamed) or a frame / Arrow table (sent as Parquet),
        matched and appended on the server (``MonitorService.ingest_labels``)."""
        import tempfile
        from pathlib import Path

        import pyarrow as pa

        if isinstance(tolerance, timedelta):
            tolerance = f"{int(tolerance.total_seconds())}s"
        params = {"deployment": deployment, "label": label, "row": row, "key": key, "entity": list(entities or []),
                  "time": time, "tolerance": tolerance, "reason": reason}
        if isinstance(source, str | Path):
            path = Path(source)
            if not path.is_file():
                raise InvalidInput(f"file {path} does not exist or is not a file")
            return self._client.upload("POST", "/labels", path, filename=path.name, **params)
        table = source if isinstance(source, pa.Table) else pa.Table.from_pandas(source, preserve_index=False)
        with tempfile.TemporaryDirectory(prefix="keel-labels-") as tmp:
            path = Path(tmp) / "labels.parquet"
            import pyarrow.parquet as pq

            pq.write_table(table, path)
            return self._client.upload("POST", "/labels", path, filename=path.name, **params)

    def trace(self, request_id: str) -> dict[str, Any]:
        return self._client.get(join("traces", request_id))

    def query_log(self, where: str | None = None, *, columns: list[str] | None = None, limit: int = 1000,
                  version: int | None = None) -> Any:
        """The matching rows as an Arrow table (the server filters; times come back timezone-aware)."""
        return query_remote_log(self._client, where, columns=columns, limit=limit, version=version)


def query_remote_log(client: Client, where: str | None, *, columns: list[str] | None, limit: int,
                     version: int | None) -> Any:
    """``GET /logs`` as an Arrow table with the log's own types."""
    import pyarrow as pa

    from keel.serving.feedback import LOG_SCHEMA

    rows = client.get("/logs", where=where, columns=",".join(columns) if columns else None, limit=limit,
                      version=version)
    schema = pa.schema([LOG_SCHEMA.field(c) for c in (columns or LOG_SCHEMA.names) if c in LOG_SCHEMA.names])
    for row in rows:
        if isinstance(row.get("at"), str):
            row["at"] = datetime.fromisoformat(row["at"])
    return pa.Table.from_pylist(rows, schema=schema)
