"""Bytes in and out without holding them: uploads go to disk chunk by chunk, downloads are streamed."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import StreamingResponse

from keel.errors import NotFound, TooLarge
from keel.storage.artifacts import CHUNK_SIZE, ArtifactInfo, ArtifactStore

__all__ = ["receive_into_store", "receive_to_file", "stream_artifact"]


async def receive_to_file(request: Request, path: Path) -> int:
    """Write the request body to ``path`` (created 0600) as it arrives; returns its size.

    A body over the workspace's ``max_upload_mb`` is refused (413) as soon as it is known to be: from its
    Content-Length before anything is written, else when the bytes received pass the limit.
    """
    limit = _limit(request)
    size = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise TooLarge(f"the upload is larger than this server takes ({limit} bytes; setting max_upload_mb)")
            out.write(chunk)
    return size


async def receive_into_store(request: Request, store: ArtifactStore, key: str) -> ArtifactInfo:
    """Write the request body straight into the artifact store (atomically, fsynced), hashing on the way:
    one copy of the bytes, not a temporary file copied again."""
    limit = _limit(request)
    digest, size = hashlib.sha256(), 0
    with store.open_write(key) as out:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise TooLarge(f"the upload is larger than this server takes ({limit} bytes; setting max_upload_mb)")
            digest.update(chunk)
            out.write(chunk)
    return ArtifactInfo(key, store.uri(key), size, digest.hexdigest())


def _limit(request: Request) -> int:
    """The upload limit in bytes; a declared body over it is refused before anything is written."""
    limit = request.app.state.keel.workspace.settings.max_upload_mb * 1024 * 1024
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"the upload is {int(declared)} bytes; this server takes at most {limit} "
                       "(setting max_upload_mb)")
    return limit


def stream_artifact(ws: Any, key: str, name: str, *, known: bool) -> StreamingResponse:
    """Stream an artifact the caller may see (``known``: listed on its run or package)."""
    if not known:
        raise NotFound(f"no artifact {name!r} here")
    handle = ws.artifacts.open(key)

    def chunks() -> Iterator[bytes]:
        with handle:
            while chunk := handle.read(CHUNK_SIZE):
                yield chunk

    filename = Path(name).name.replace('"', "")
    return StreamingResponse(chunks(), media_type="application/octet-stream",
                             headers={"Content-Disposition": f'attachment; filename="{filename}"'})
