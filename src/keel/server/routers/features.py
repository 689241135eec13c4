"""/api/v1/features: feature views and entities, point-in-time training sets, materialisation, online values
and skew checks, over ``ws.features``.

Applying definitions is deliberately not here: a definition is Python (a pandas transform, an on-demand
function) and applying it means importing the user's code; the server never imports code a request names.
Definitions are applied where the code lives (``keel features apply``, or ``ws.features.apply`` in an
embedded workspace on the same metadata store); everything else is served from what they stored.

Fixed paths (``/features/entities``, ``/features/training-sets``, ``/features/materialize``,
``/features/online``) come before ``/features/{name}``: a view with one of those names is still reachable
as ``NAME@VERSION``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr

from keel.errors import NotFound
from keel.server.responses import json_response
from keel.server.security import READ, WRITE
from keel.workspace import Workspace

__all__ = ["MAX_ENTITY_ROWS", "MAX_FEATURES", "router"]

router = APIRouter(tags=["features"])
MAX_FEATURES = 1_000  # features (or views) named in one request
MAX_ENTITY_ROWS = 10_000  # entity rows in one online request
MAX_KEYS = 64  # values in one entity row (join keys and request fields)
MAX_SAMPLE = 1_000_000  # entities one skew check compares

Text = Annotated[str, Field(min_length=1, max_length=512)]
# a join key is a 64-bit integer or a string in every store; request fields are scalars too
Int64 = Annotated[StrictInt, Field(ge=-(2**63), le=2**63 - 1)]
Scalar = Int64 | StrictFloat | Annotated[StrictStr, Field(max_length=4096)] | StrictBool | None
EntityRow = Annotated[dict[Annotated[str, Field(max_length=512)], Scalar], Field(max_length=MAX_KEYS)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is an error, not silently ignored


# -- views and entities -----------------------------------------------------------------------------------

@router.get("/features", response_model=list[Any])
def list_views(ws: Workspace = READ) -> Response:
    """Every view's latest version (removed views are not listed)."""
    return json_response(ws.features.list())


@router.get("/features/entities", response_model=list[Any])
def entities(ws: Workspace = READ) -> Response:
    return json_response(ws.features.entities())


# -- training sets ----------------------------------------------------------------------------------------

class TrainingSetRequest(_Body):
    entities: Text = Field(description="A table ref of the entity rows (join keys, timestamp, label): "
                                        "driver_labels, driver_labels@2")
    features: list[Text] = Field(min_length=1, max_length=MAX_FEATURES, description="view:feature, in order")
    label: Text | None = None
    timestamp: Text = "event_timestamp"
    name: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    full_names: StrictBool = False


@router.get("/features/training-sets", response_model=list[Any])
def training_sets(ws: Workspace = READ, name: str | None = Query(None, max_length=512)) -> Response:
    """Stored training sets (of ``name``, or all), newest version first."""
    return json_response(ws.features.training_sets(name))


@router.post("/features/training-sets", status_code=201, response_model=Any)
def create_training_set(body: TrainingSetRequest, ws: Workspace = WRITE) -> Response:
    """Compute a point-in-time training set from a table of entity rows and store it (a new version of
    ``name``); the answer is its record. Its rows are the table ``{table}@{version}`` (the data routes)."""
    found = ws.features.training_set(body.entities, list(body.features), label=body.label, timestamp=body.timestamp,
                                     name=body.name, store=True, full_names=body.full_names)
    return json_response(found.info, status_code=201)


@router.get("/features/training-sets/{name}", response_model=list[Any])
def training_set_versions(name: str, ws: Workspace = READ) -> Response:
    found = ws.features.training_sets(name)
    if not found:
        raise NotFound(f"unknown training set {name!r}; GET /api/v1/features/training-sets lists them")
    return json_response(found)


@router.get("/features/training-sets/{ref}/info", response_model=Any)
def training_set_info(ref: str, ws: Workspace = READ) -> Response:
    """One training set version's record: ``name`` (the latest), ``name@3`` or ``trainingset:name@3``."""
    return json_response(ws.features.get_training_set(ref))


# -- online -----------------------------------------------------------------------------------------------

class MaterializeRequest(_Body):
    views: list[Text] | None = Field(None, max_length=MAX_FEATURES, description="Default: every batch view")
    start: Annotated[str, Field(max_length=64)] | None = Field(None, description="UTC, ISO 8601")
    end: Annotated[str, Field(max_length=64)] | None = Field(None, description="UTC, ISO 8601; default: now")
    incremental: StrictBool = False


@router.post("/features/materialize", response_model=list[Any])
def materialize(body: MaterializeRequest, ws: Workspace = WRITE) -> Response:
    """Write each view's latest value per entity in [start, end) into the online store."""
    return json_response(ws.features.materialize(body.views, start=body.start, end=body.end,
                                                 incremental=body.incremental))


class OnlineRequest(_Body):
    features: list[Text] = Field(min_length=1, max_length=MAX_FEATURES, description="view:feature, in order")
    entity_rows: list[EntityRow] = Field(max_length=MAX_ENTITY_ROWS,
                                         description='Join key values (and request fields), e.g. {"driver_id": 7}')
    full_names: StrictBool = False
    versions: dict[Text, Annotated[StrictInt, Field(ge=1)]] | None = Field(
        None, max_length=MAX_FEATURES, description='View versions to read instead of the latest, e.g. {"stats": 2}')


@router.post("/features/online", response_model=dict[str, Any])
def online(body: OnlineRequest, ws: Workspace = READ) -> Response:
    """Online values in the order asked, each with its status: present, missing or expired. Reading
    features is a read: a viewer may."""
    found = ws.features.online(list(body.features), [dict(row) for row in body.entity_rows],
                               full_names=body.full_names, versions=body.versions)
    return json_response(found.to_json())


# -- one view ---------------------------------------------------------------------------------------------

@router.get("/features/{name}", response_model=dict[str, Any])
def show(name: str, ws: Workspace = READ) -> Response:
    """A view as its page shows it: definition, versions, sources, freshness, consumers per feature."""
    return json_response(ws.features.show(name))


@router.get("/features/{name}/info", response_model=Any)
def info(name: str, ws: Workspace = READ, version: int | None = Query(None, ge=1)) -> Response:
    """One stored version of a view (the latest by default): what ``ws.features.get`` returns."""
    return json_response(ws.features.get(name, version))


@router.get("/features/{name}/versions", response_model=list[Any])
def versions(name: str, ws: Workspace = READ) -> Response:
    return json_response(ws.features.versions(name))


@router.get("/features/{name}/consumers", response_model=dict[str, Any])
def consumers(name: str, ws: Workspace = READ) -> Response:
    """feature -> {kind -> refs}: the training sets, runs, models, deployments and jobs reading it."""
    return json_response(ws.features.consumers(name))


@router.get("/features/{name}/materializations", response_model=list[Any])
def materializations(name: str, ws: Workspace = READ) -> Response:
    view = ws.features.get(name).name  # an unknown view is a 404, not an empty list; NAME@VERSION: its view
    # plain str keys: the database hands back "by" (an SQL keyword) as a quoted_name, which orjson refuses
    return json_response([{str(k): v for k, v in m.items()} for m in ws.features.materializations(view)])


@router.get("/features/{name}/skew", response_model=dict[str, Any])
def skew(name: str, ws: Workspace = READ, sample: int = Query(1000, ge=1, le=MAX_SAMPLE),
         seed: int = Query(0, ge=0, le=2**32 - 1)) -> Response:
    """Online values against the offline point-in-time values for up to ``sample`` entities."""
    report = ws.features.check_skew(name, sample=sample, seed=seed)
    return json_response({"view": report.view, "version": report.version,
                          "materialized_until": report.materialized_until, "checked": report.checked,
                          "mismatches": report.mismatches, "ok": report.ok})
