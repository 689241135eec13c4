"""Bytes in and out without holding them: uploads go to disk chunk by chunk, downloads are streamed.

The event loop only moves bytes between the socket and a worker thread; the thread hashes, writes and reads
files, one megabyte at a time, while the loop receives (or sends) the next one. So a transfer costs about
what the slower of the two sides costs, not their sum, and memory stays two chunks per transfer.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import IO, Any

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
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        return await _receive(request, out.write)


async def receive_into_store(request: Request, store: ArtifactStore, key: str) -> ArtifactInfo:
    """Write the request body straight into the artifact store (atomically, fsynced), hashing on the way:
    one copy of the bytes, not a temporary file copied again."""
    digest = hashlib.sha256()
    with store.open_write(key) as out:

        def consume(data: bytes) -> None:
            digest.update(data)
            out.write(data)

        size = await _receive(request, consume)
    return ArtifactInfo(key, store.uri(key), size, digest.hexdigest())


async def _receive(request: Request, consume: Callable[[bytes], Any]) -> int:
    """Hand the request body to ``consume`` (run in a worker thread) a megabyte at a time, receiving the next
    while the thread handles the last (it also joins the received pieces: no copy on the event loop); returns
    the body's size. ``consume`` has finished with every chunk when this returns or raises, so the caller may
    close what it writes to."""
    limit = _limit(request)
    size, pieces, held = 0, list[bytes](), 0
    pending: Future[Any] | None = None
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise TooLarge(f"the upload is larger than this server takes ({limit} bytes; setting max_upload_mb)")
            pieces.append(chunk)
            held += len(chunk)
            if held >= CHUNK_SIZE:
                if pending is not None:
                    await asyncio.wrap_future(pending)
                pending, pieces, held = _IO.submit(_joined, consume, pieces), [], 0
        if pending is not None:
            await asyncio.wrap_future(pending)
            pending = None
        if pieces:
            await asyncio.wrap_future(_IO.submit(_joined, consume, pieces))
    finally:
        if pending is not None:
            wait([pending])  # an upload cut short: wait (one chunk at most) until the thread lets go
    return size


def _joined(consume: Callable[[bytes], Any], pieces: list[bytes]) -> Any:
    return consume(pieces[0] if len(pieces) == 1 else b"".join(pieces))


def _limit(request: Request) -> int:
    """The upload limit in bytes; a declared body over it is refused before anything is written."""
    limit = request.app.state.keel.workspace.settings.max_upload_mb * 1024 * 1024
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"the upload is {int(declared)} bytes; this server takes at most {limit} "
                       "(setting max_upload_mb)")
    return limit


def stream_artifact(ws: Any, key: str, name: str, *, sha256: str | None) -> StreamingResponse:
    """Stream an artifact the caller may see: one listed on its run or package, with the ``sha256`` recorded
    there (None: not listed, 404). The digest goes out as ``Repr-Digest`` (RFC 9530), so a client checks the
    bytes it gets without asking for the record first."""
    if sha256 is None:
        raise NotFound(f"no artifact {name!r} here")
    handle = ws.artifacts.open(key)
    filename = Path(name).name.replace('"', "")
    digest = base64.b64encode(bytes.fromhex(sha256)).decode()
    return StreamingResponse(_read_ahead(handle), media_type="application/octet-stream",
                             headers={"Content-Disposition": f'attachment; filename="{filename}"',
                                      "Repr-Digest": f"sha-256=:{digest}:"})


async def _read_ahead(handle: IO[bytes]) -> AsyncIterator[bytes]:
    """The file's chunks, each read in a worker thread while the one before is being sent; closes it."""
    ahead = _IO.submit(handle.read, CHUNK_SIZE)
    try:
        while chunk := await asyncio.wrap_future(ahead):
            ahead = _IO.submit(handle.read, CHUNK_SIZE)
            yield chunk
    finally:
        wait([ahead])  # never close the file under a read still running
        handle.close()


_IO = ThreadPoolExecutor(max_workers=16, thread_name_prefix="keel-io")  # file work for transfers, off the loop
