"""Bytes in and out without holding them: uploads go to disk chunk by chunk, downloads are streamed."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import StreamingResponse

from keel.errors import NotFound
from keel.storage.artifacts import CHUNK_SIZE

__all__ = ["receive_to_file", "stream_artifact"]


async def receive_to_file(request: Request, path: Path) -> int:
    """Write the request body to ``path`` (created 0600) as it arrives; returns its size."""
    size = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        async for chunk in request.stream():
            out.write(chunk)
            size += len(chunk)
    return size


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
