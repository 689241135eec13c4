"""/api/v1/tables and /api/v1/splits: versioned tables, their rows, profiles, history, and splits."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from keel.errors import InvalidInput
from keel.refs import check_name
from keel.server.security import READ, WRITE
from keel.server.streams import receive_to_file
from keel.workspace import Workspace

router = APIRouter(tags=["data"])
MAX_ROWS = 10_000
UPLOAD_SUFFIXES = (".csv", ".parquet", ".pq", ".jsonl", ".ndjson", ".json")


@router.get("/tables")
def list_tables(ws: Workspace = READ) -> list[Any]:
    return ws.data.tables()


@router.get("/tables/{ref}/history")
def history(ref: str, ws: Workspace = READ) -> list[Any]:
    return ws.data.history(ref)


@router.get("/tables/{ref}/version")
def version(ref: str, ws: Workspace = READ) -> Any:
    return ws.data.version(ref)


@router.get("/tables/{ref}/rows")
def rows(ref: str, ws: Workspace = READ, columns: str | None = None, where: str | None = None,
         limit: int = Query(100, ge=1, le=MAX_ROWS)) -> dict[str, Any]:
    """Rows of a table version as records (at most 10,000 a request; export the table for more)."""
    table = ws.data.read_arrow(ref, columns=columns.split(",") if columns else None, where=where)
    shown = table.slice(0, limit)
    return {"ref": ws.data.version(ref).ref, "rows": table.num_rows, "columns": shown.column_names,
            "records": shown.to_pylist()}


@router.get("/tables/{ref}/profile")
def profile(ref: str, ws: Workspace = READ) -> dict[str, Any]:
    return ws.data.profile(ref)


@router.get("/tables/{name}/contract")
def contract(name: str, ws: Workspace = READ) -> Any:
    spec = ws.data.contract(name)
    return None if spec is None else spec.model_dump(mode="json") if hasattr(spec, "model_dump") else spec


@router.post("/tables/{name}/ingest", status_code=201)
async def ingest(name: str, request: Request, ws: Workspace = WRITE, filename: str = Query(...),
                 mode: Literal["append", "overwrite"] = "append",
                 on_bad_rows: Literal["reject", "quarantine"] = "reject", time_column: str | None = None,
                 reason: str | None = None) -> Any:
    """Ingest the request body (a CSV, Parquet or JSON Lines file named ``filename``), streamed to disk."""
    check_name(name, "table name")
    base = Path(filename).name
    if base != filename or not base.lower().endswith(UPLOAD_SUFFIXES) or len(base.encode()) > 255 \
            or any(ord(c) < 32 or ord(c) == 127 for c in base):  # NUL, newlines: not a file name
        raise InvalidInput(f"filename must be a plain file name (at most 255 bytes, no control characters) ending "
                           f"in one of {', '.join(UPLOAD_SUFFIXES)}")
    with tempfile.TemporaryDirectory(prefix="keel-upload-") as tmp:
        path = Path(tmp) / base
        await receive_to_file(request, path)
        return await run_in_threadpool(ws.data.ingest, path, name, mode=mode, on_bad_rows=on_bad_rows,
                                       time_column=time_column, reason=reason)


class SplitRequest(BaseModel):
    table: str = Field(description="A table ref: listings, listings@3")
    target: str
    time_column: str | None = None
    group: str | None = None
    fractions: str = "0.7,0.15,0.15"
    gap: str | None = None
    name: str | None = None
    seed: int = 42
    dedupe: bool = False
    allow_duplicates: bool = False
    reason: str | None = None
    ignore_for_duplicates: list[str] | None = Field(None, max_length=10_000)


@router.post("/splits", status_code=201)
def split(body: SplitRequest, ws: Workspace = WRITE) -> Any:
    return ws.data.split(body.table, target=body.target, time_column=body.time_column, group=body.group,
                         fractions=body.fractions, gap=body.gap, name=body.name, seed=body.seed, dedupe=body.dedupe,
                         allow_duplicates=body.allow_duplicates, reason=body.reason,
                         ignore_for_duplicates=body.ignore_for_duplicates)


@router.get("/splits/{ref}")
def split_info(ref: str, ws: Workspace = READ) -> Any:
    return ws.data.split_info(ref)
