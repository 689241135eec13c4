"""What monitoring stores: a monitor (what to watch and how) and its numbered drift reports."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

__all__ = ["AlertEvent", "DriftReport", "Monitor"]


@dataclass(frozen=True)
class Monitor:
    """A deployment watched window by window against a trusted baseline."""

    name: str
    deployment: str
    baseline: str  # training | a table ref | window:START..END
    window: str  # the default window of a run: a duration back from now (1h, 1d)
    slices: list[str] = field(default_factory=list)
    methods: dict[str, str] = field(default_factory=dict)  # column -> drift method (default: by type and size)
    thresholds: dict[str, float] = field(default_factory=dict)  # column -> threshold (default: the method's)
    share: float = 0.5  # the dataset drifts when this share of its columns do
    alerts: list[str] = field(default_factory=list)  # rules (keel.monitoring.alerts)
    webhook: str | None = None  # where alert events are POSTed
    kpis: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> stored function (keel.code)
    latest_report: int = 0
    created_at: datetime | None = None
    created_by: str = ""

    @property
    def ref(self) -> str:
        return f"monitor:{self.name}"

    def spec(self) -> dict[str, Any]:
        return {"baseline": self.baseline, "window": self.window, "slices": list(self.slices),
                "methods": dict(self.methods), "thresholds": dict(self.thresholds), "share": self.share,
                "alerts": list(self.alerts), "webhook": self.webhook, "kpis": dict(self.kpis)}

    def to_dict(self) -> dict[str, Any]:
        """What anyone who may read the monitor sees: the webhook's address without its path or query, which
        often carry the receiver's secret."""
        out = asdict(self)
        out["created_at"] = self.created_at.isoformat() if self.created_at else None
        out["webhook"] = redact_url(self.webhook)
        return out


def redact_url(url: str | None) -> str | None:
    if not url:
        return url
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}/…" \
        if parts.path not in ("", "/") or parts.query else url


@dataclass(frozen=True)
class DriftReport:
    """One run of a monitor over one window: per column, per slice, the prediction; with what it was read from."""

    monitor: str
    number: int
    window_start: datetime
    window_end: datetime
    status: str  # ok | no_data (a window without rows is not a window without drift)
    drifted: bool
    rows: int
    model: str | None
    deployment_version: int | None
    log_version: int | None
    baseline: str  # the reference sketch's key
    results: dict[str, Any]
    duration_s: float
    created_at: datetime
    created_by: str

    @property
    def ref(self) -> str:
        return f"monitor_report:{self.monitor}/{self.number}"

    def drifted_columns(self) -> list[str]:
        return [c["column"] for c in self.results.get("overall", {}).get("columns", []) if c.get("drifted")]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("window_start", "window_end", "created_at"):
            out[key] = getattr(self, key).isoformat()
        out["ref"] = self.ref
        return out


@dataclass(frozen=True)
class AlertEvent:
    """A rule started (``firing``) or stopped (``resolved``) holding, at a monitor's report."""

    id: str
    monitor: str
    report: int
    rule: str
    state: str
    value: float | None
    webhook: str | None  # sent | failed: ... | refused: ... | None (the monitor has no webhook)
    at: datetime

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["at"] = self.at.isoformat()
        return out
