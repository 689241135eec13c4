"""/api/v1/models: the registry — versions, aliases, environments, approvals, cards, show, diff, files."""

from __future__ import annotations

import os
import re
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from keel.errors import InvalidInput, PermissionDenied
from keel.models.model import CARD_FIELDS
from keel.server.security import APPROVE, READ, WRITE
from keel.server.streams import receive_to_file, stream_artifact
from keel.users import role_allows
from keel.workspace import Workspace

router = APIRouter(tags=["models"])


def _ref(name: str, version: str) -> str:
    """``/models/price/versions/3`` and ``/models/price/versions/champion`` (an alias) both work."""
    return f"{name}/{version}" if version.isdigit() else f"{name}@{version}"


@router.get("/models")
def list_models(ws: Workspace = READ) -> list[Any]:
    return ws.models.list()


@router.get("/models/{name}")
def get_model(name: str, ws: Workspace = READ) -> Any:
    return ws.models.get(name)


@router.get("/models/{name}/versions")
def versions(name: str, ws: Workspace = READ) -> list[Any]:
    return ws.models.versions(name)


@router.get("/models/{name}/versions/{version}")
def show(name: str, version: str, ws: Workspace = READ) -> dict[str, Any]:
    return ws.models.show(_ref(name, version))


@router.get("/models/{name}/versions/{version}/info")
def version_info(name: str, version: str, ws: Workspace = READ) -> Any:
    """The version record (``ws.models.version``): what a remote client needs to fetch and verify a package."""
    return ws.models.version(_ref(name, version))


_PACKAGE_FILE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", re.ASCII)
MAX_PACKAGE_FILES = 64


@router.post("/models/{name}/versions", status_code=201)
async def upload_package(name: str, request: Request, ws: Workspace = WRITE, run: str | None = None,
                         description: str | None = None) -> Any:
    """Register a package a client wrote (``keel.remote``): the body is an uncompressed tar of its flat files.

    The body is streamed to disk, only plain files with plain names are taken from it, and the registry
    checks every file against the manifest's hashes. Nothing in the package is deserialised here.
    """
    with tempfile.TemporaryDirectory(prefix="keel-upload-") as tmp:
        body, folder = Path(tmp) / "package.tar", Path(tmp) / "package"
        await receive_to_file(request, body)
        await run_in_threadpool(_unpack, body, folder)
        return await run_in_threadpool(ws.models.register_package, folder, name, run=run, description=description)


def _unpack(tar_path: Path, folder: Path) -> None:
    """Extract a flat tar of regular files, refusing links, folders, odd names and duplicates."""
    folder.mkdir(mode=0o700)
    try:
        with tarfile.open(tar_path, mode="r:") as tar:
            for count, member in enumerate(tar, start=1):
                if count > MAX_PACKAGE_FILES:
                    raise InvalidInput(f"a model package has at most {MAX_PACKAGE_FILES} files")
                if not member.isreg() or member.issparse() or not _PACKAGE_FILE.fullmatch(member.name):
                    raise InvalidInput(f"a model package holds plain files with plain names, not {member.name!r}")
                target = folder / member.name
                if target.exists():
                    raise InvalidInput(f"{member.name!r} appears twice in the package")
                source = tar.extractfile(member)
                with source, open(target, "xb", opener=lambda p, f: os.open(p, f, 0o600)) as out:
                    shutil.copyfileobj(source, out, 1024 * 1024)
    except (tarfile.TarError, EOFError) as exc:
        raise InvalidInput(f"the body is not an uncompressed tar of the package files: {exc}") from None


@router.get("/models/{name}/versions/{version}/files/{filename}")
def download_file(name: str, version: str, filename: str, ws: Workspace = READ) -> StreamingResponse:
    """One file of a version's package (the manifest lists them, with their sha256)."""
    found = ws.models.version(_ref(name, version))
    files = ws.models.manifest(found.name)["files"]
    digest = found.manifest_sha256 if filename == "keel-model.yaml" else files.get(filename)
    return stream_artifact(ws, f"{found.package_key}/{filename}", filename, sha256=digest)


@router.get("/models/{name}/diff")
def diff(name: str, a: str, b: str, ws: Workspace = READ) -> dict[str, Any]:
    return ws.models.diff(_ref(name, a), _ref(name, b))


@router.get("/models/{name}/history")
def history(name: str, ws: Workspace = READ, alias: str | None = None) -> list[Any]:
    return ws.models.alias_history(name, alias)


class AliasMove(BaseModel):
    alias: str
    version: int
    reason: str | None = None


@router.post("/models/{name}/aliases")
def set_alias(name: str, body: AliasMove, ws: Workspace = WRITE) -> Any:
    return ws.models.set_alias(f"{name}/{body.version}", body.alias, reason=body.reason)


@router.delete("/models/{name}/aliases/{alias}", status_code=204)
def remove_alias(name: str, alias: str, ws: Workspace = WRITE, reason: str | None = None) -> None:
    ws.models.remove_alias(name, alias, reason=reason)


class Promotion(BaseModel):
    environment: str
    reason: str | None = None
    override: bool = False


@router.post("/models/{name}/versions/{version}/promote")
def promote(name: str, version: str, body: Promotion, ws: Workspace = WRITE) -> Any:
    """Staging for developers; production only for approvers (and an approval of the version)."""
    if body.environment == "production" and not role_allows(ws.users.get(ws.user).role, "approver"):
        raise PermissionDenied("promoting to production needs the approver role")
    return ws.models.promote(_ref(name, version), body.environment, reason=body.reason, override=body.override)


class ApprovalRequest(BaseModel):
    reason: str
    environment: str = "production"


@router.post("/models/{name}/versions/{version}/approve", status_code=201)
def approve(name: str, version: str, body: ApprovalRequest, ws: Workspace = APPROVE) -> Any:
    return ws.models.approve(_ref(name, version), reason=body.reason, environment=body.environment)


@router.get("/models/{name}/approvals")
def approvals(name: str, ws: Workspace = READ, version: int | None = Query(None, ge=1)) -> list[Any]:
    return ws.models.approvals(name, version)


@router.get("/models/{name}/card")
def card(name: str, ws: Workspace = READ, version: int | None = Query(None, ge=1)) -> Any:
    return ws.models.card(name, version)


@router.put("/models/{name}/card")
def update_card(name: str, fields: dict[str, Any], ws: Workspace = WRITE, reason: str | None = None) -> Any:
    unknown = sorted(fields.keys() - set(CARD_FIELDS))  # before the call: "name" or "reason" would clash with its own
    if unknown:
        raise InvalidInput(f"unknown model card field(s) {', '.join(unknown)}; use {', '.join(CARD_FIELDS)} "
                           "(a reason goes in ?reason=)")
    return ws.models.update_card(name, reason=reason, **fields)
