"""Incidents (``ws.incidents``): a deployment's timeline between two times (keel.monitoring.timeline) and, for a
blameless post-mortem, an incident recorded with that timeline as read then, a severity and notes appended later;
with lineage to the deployment versions it covers and an audit row.

The CLI, REST API and remote client call exactly these methods.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from keel.audit import AuditLog
from keel.errors import InvalidInput, NotFound
from keel.lineage import Edge, LineageService
from keel.logs import get_logger
from keel.models.service import ModelService
from keel.monitoring.timeline import Timeline, build_timeline, parse_range
from keel.numbers import json_safe
from keel.serving.service import DeploymentService
from keel.storage.db import Database
from keel.storage.schema import incident_notes, incidents
from keel.tracking.service import RunService

__all__ = ["SEVERITIES", "Incident", "IncidentService"]

log = get_logger("keel.monitoring")

SEVERITIES = ("low", "medium", "high")
MAX_TITLE = 512
MAX_NOTE = 20_000


@dataclass(frozen=True)
class Incident:
    """A recorded incident: what, on which deployment, over which range, how bad; the timeline as it was read when
    it was recorded (``Timeline.to_dict()``); notes, oldest first, each ``{at, by, text}``."""

    id: int
    title: str
    deployment: str
    window_start: datetime
    window_end: datetime
    severity: str
    timeline: dict[str, Any]
    notes: list[dict[str, Any]] = field(default_factory=list)
    created_at: datetime | None = None
    created_by: str = ""

    @property
    def ref(self) -> str:
        return f"incident:{self.id}"

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "ref": self.ref, "title": self.title, "deployment": self.deployment,
                "window_start": self.window_start.isoformat(), "window_end": self.window_end.isoformat(),
                "severity": self.severity, "timeline": self.timeline, "notes": list(self.notes),
                "created_at": self.created_at.isoformat() if self.created_at else None, "created_by": self.created_by}


class IncidentService:
    """Read a deployment's timeline; record incidents with it; append notes."""

    def __init__(self, db: Database, models: ModelService, runs: RunService, deployments: DeploymentService,
                 lineage: LineageService, audit: AuditLog, user: str) -> None:
        self._db, self._models, self._runs, self._deployments = db, models, runs, deployments
        self._lineage, self._audit, self._user = lineage, audit, user

    def timeline(self, deployment: str, start: datetime | str, end: datetime | str | None = None) -> Timeline:
        """What happened to ``deployment`` between ``start`` and ``end`` (times, ISO texts or durations back from
        now such as ``6h``; ``end`` defaults to now), oldest first."""
        first, last = parse_range(start, end)
        return build_timeline(self._db, self._deployments, self._lineage, self._trained_on, deployment, first, last)

    def _trained_on(self, model: str) -> str | None:
        """The data a version's run was fitted on (its ``fit.data`` tag), None when unknown or gone."""
        try:
            version = self._models.version(model)
            return self._runs.get(version.run_id).tags.get("fit.data") if version.run_id else None
        except NotFound:
            return None

    def create(self, deployment: str, start: datetime | str, end: datetime | str | None = None, *, title: str,
               note: str | None = None, severity: str = "medium") -> Incident:
        """Record an incident of ``deployment`` over [start, end] with its timeline read now."""
        title = (title or "").strip()
        if not title:
            raise InvalidInput("an incident needs a title (--title): what went wrong, in a line")
        if len(title) > MAX_TITLE:
            raise InvalidInput(f"the title has {len(title)} characters; at most {MAX_TITLE}")
        if severity not in SEVERITIES:
            raise InvalidInput(f"severity {severity!r}: use one of {', '.join(SEVERITIES)}")
        note = _check_note(note) if note is not None and note.strip() else None
        found = self.timeline(deployment, start, end)
        now = datetime.now(UTC)

        def insert(conn: sa.Connection) -> int:
            number = conn.execute(incidents.insert().values(
                title=title, deployment=found.deployment, window_start=found.start, window_end=found.end,
                severity=severity, timeline=json_safe(found.to_dict()), created_at=now, created_by=self._user)
            ).inserted_primary_key[0]
            if note:
                conn.execute(incident_notes.insert().values(incident=number, text=note, at=now, by=self._user))
            ref = f"incident:{number}"
            self._lineage.add(conn, [Edge(f"deployment:{found.deployment}@{v}", ref, "reviewed_in")
                                     for v in found.versions])
            self._audit.record(conn, actor=self._user, action="incident.create", target=ref, reason=title,
                               details={"deployment": found.deployment, "from": found.start.isoformat(),
                                        "to": found.end.isoformat(), "severity": severity,
                                        "events": len(found.events)})
            return int(number)

        number = self._db.retrying(insert)
        log.info("incident.create", incident=number, deployment=found.deployment, severity=severity,
                 events=len(found.events))
        return self.get(number)

    def get(self, id: int | str) -> Incident:
        number = _id(id)
        with self._db.read() as conn:
            row = conn.execute(sa.select(incidents).where(incidents.c.id == number)).first()
            if row is None:
                raise NotFound(f"no incident {id!r}; `keel incident list` lists them")
            notes = conn.execute(sa.select(incident_notes).where(incident_notes.c.incident == number)
                                 .order_by(incident_notes.c.id)).all()
        return _incident(row, [_note(n) for n in notes])

    def list(self, deployment: str | None = None, *, limit: int = 100) -> list[Incident]:
        """Incidents, newest first, without their timelines (``get`` has it) but with their notes."""
        if not 1 <= limit <= 10_000:
            raise InvalidInput(f"limit {limit} must be between 1 and 10,000")
        query = sa.select(*[c for c in incidents.c if c.name != "timeline"]).order_by(incidents.c.id.desc()) \
            .limit(limit)
        if deployment is not None:
            query = query.where(incidents.c.deployment == deployment)
        with self._db.read() as conn:
            rows = conn.execute(query).all()
            notes: dict[int, list[dict[str, Any]]] = {}
            if rows:
                for n in conn.execute(sa.select(incident_notes).where(
                        incident_notes.c.incident.in_([r.id for r in rows])).order_by(incident_notes.c.id)):
                    notes.setdefault(n.incident, []).append(_note(n))
        return [_incident(r, notes.get(r.id, []), timeline={}) for r in rows]

    def note(self, id: int | str, text: str) -> Incident:
        """Append a note (what was found, decided, done) to an incident."""
        text = _check_note(text)
        incident = self.get(id)
        now = datetime.now(UTC)

        def insert(conn: sa.Connection) -> None:
            conn.execute(incident_notes.insert().values(incident=incident.id, text=text, at=now, by=self._user))
            self._audit.record(conn, actor=self._user, action="incident.note", target=incident.ref,
                               details={"characters": len(text)})

        self._db.retrying(insert)
        return self.get(incident.id)


def _check_note(text: str | None) -> str:
    text = (text or "").strip()
    if not text:
        raise InvalidInput("a note needs some text")
    if len(text) > MAX_NOTE:
        raise InvalidInput(f"the note has {len(text):,} characters; at most {MAX_NOTE:,}")
    return text


def _id(value: int | str) -> int:
    text = str(value).strip().removeprefix("incident:")
    if not text.isdigit() or len(text) > 12:
        raise InvalidInput(f"incident id {value!r}: a number such as 3 (or incident:3)")
    return int(text)


def _note(row: Any) -> dict[str, Any]:
    return {"at": row.at.isoformat(), "by": row.by, "text": row.text}


def _incident(row: Any, notes: list[dict[str, Any]], timeline: dict[str, Any] | None = None) -> Incident:
    return Incident(row.id, row.title, row.deployment, row.window_start, row.window_end, row.severity,
                    row.timeline if timeline is None else timeline, notes, row.created_at, row.created_by)
