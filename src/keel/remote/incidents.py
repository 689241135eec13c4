"""``ws.incidents`` over HTTP: the embedded ``IncidentService`` methods, returning the same records (``Timeline``,
``Incident``); the server reads the timeline and records the incident."""

from __future__ import annotations

from datetime import datetime

from keel.monitoring.incidents import Incident
from keel.monitoring.timeline import Timeline
from keel.remote.client import Client, join
from keel.remote.decode import decode, decode_list

__all__ = ["RemoteIncidentService"]


class RemoteIncidentService:
    """The incidents of a keel server."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def timeline(self, deployment: str, start: datetime | str, end: datetime | str | None = None) -> Timeline:
        return decode(Timeline, self._client.get("/incidents/timeline", deployment=deployment, **{
            "from": _text(start), "to": _text(end) if end is not None else None}))

    def create(self, deployment: str, start: datetime | str, end: datetime | str | None = None, *, title: str,
               note: str | None = None, severity: str = "medium") -> Incident:
        body = {"deployment": deployment, "from": _text(start), "to": _text(end) if end is not None else None,
                "title": title, "note": note, "severity": severity}
        return decode(Incident, self._client.post("/incidents", body))

    def get(self, id: int | str) -> Incident:
        return decode(Incident, self._client.get(join("incidents", _id(id))))

    def list(self, deployment: str | None = None, *, limit: int = 100) -> list[Incident]:
        return decode_list(Incident, self._client.get("/incidents", deployment=deployment, limit=limit))

    def note(self, id: int | str, text: str) -> Incident:
        return decode(Incident, self._client.post(join("incidents", _id(id), "notes"), {"text": text}))


def _text(value: datetime | str) -> str:
    """A time as the server reads it: naive times are UTC, as embedded."""
    return value.isoformat() if isinstance(value, datetime) else value


def _id(value: int | str) -> str:
    return str(value).strip().removeprefix("incident:")
