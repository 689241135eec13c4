"""/api/v1/incidents: a deployment's timeline between two times, and incidents recorded with it, over
``ws.incidents``.

Reading (the timeline, incidents) is for viewers; recording an incident and appending notes are a developer's,
made as the token's user.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from keel.server.responses import json_response
from keel.server.security import READ, WRITE
from keel.workspace import Workspace

__all__ = ["router"]

router = APIRouter(tags=["incidents"])

Name = Annotated[str, Field(min_length=1, max_length=512)]
Time = Annotated[str, Field(min_length=1, max_length=64)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)  # a misspelt field is an error


class CreateRequest(_Body):
    deployment: Name = Field(description="The deployment")
    start: Time = Field(alias="from", description="An ISO time or a duration back from now (6h)")
    end: Time | None = Field(None, alias="to", description="An ISO time or a duration back from now; default now")
    title: Annotated[str, Field(max_length=512)] = Field(description="What went wrong, in a line")
    note: Annotated[str, Field(max_length=20_000)] | None = Field(None, description="A first note")
    severity: Literal["low", "medium", "high"] = "medium"


class NoteRequest(_Body):
    text: Annotated[str, Field(max_length=20_000)] = Field(description="What was found, decided or done")


@router.get("/incidents/timeline", response_model=dict[str, Any])
def timeline(ws: Workspace = READ, deployment: str = Query(..., min_length=1, max_length=512),
             start: str = Query(..., alias="from", min_length=1, max_length=64),
             end: str | None = Query(None, alias="to", max_length=64)) -> Response:
    """The deployment's events between ``from`` and ``to`` (default now), oldest first."""
    return json_response(ws.incidents.timeline(deployment, start, end or None).to_dict())


@router.post("/incidents", status_code=201, response_model=dict[str, Any])
def create(body: CreateRequest, ws: Workspace = WRITE) -> Response:
    """An incident recorded with the deployment's timeline over the range, as it reads now."""
    made = ws.incidents.create(body.deployment, body.start, body.end, title=body.title, note=body.note,
                               severity=body.severity)
    return json_response(made.to_dict(), status_code=201)


@router.get("/incidents", response_model=list[Any])
def list_incidents(ws: Workspace = READ, deployment: str | None = Query(None, max_length=512),
                   limit: int = Query(100, ge=1, le=10_000)) -> Response:
    """Incidents, newest first, without their timelines (GET /incidents/{id} has it)."""
    return json_response([i.to_dict() for i in ws.incidents.list(deployment, limit=limit)])


@router.get("/incidents/{id}", response_model=dict[str, Any])
def get(id: int, ws: Workspace = READ) -> Response:
    return json_response(ws.incidents.get(id).to_dict())


@router.post("/incidents/{id}/notes", status_code=201, response_model=dict[str, Any])
def note(id: int, body: NoteRequest, ws: Workspace = WRITE) -> Response:
    """Append a note; the incident with every note."""
    return json_response(ws.incidents.note(id, body.text).to_dict(), status_code=201)
