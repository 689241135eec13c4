"""The prediction log's write-ahead half: every answered request is a line in a local segment file before the
response goes out, and closed segments are committed to a table in batches.

Durability: a record is written and flushed to the operating system before ``append`` returns, so a killed
server process (SIGKILL) loses nothing it answered; segments are fsynced when they are closed. Exactly once: a
segment is committed with its id in every row (``log_segment``) and deleted afterwards, committing skips segments
whose id the table already holds (a crash between the commit and the delete), and whoever commits a folder (the
serving process, its sidecar, a server recovering a dead one's folder) holds the folder's ``commit.lock`` while
doing so, so two committers never commit the same segment.
"""

from __future__ import annotations

import fcntl
import os
import threading
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.json as pa_json

__all__ = ["SEGMENT_COLUMN", "SegmentLog"]

SEGMENT_COLUMN = "log_segment"  # keel reserves _keel_ columns for its own bookkeeping in tables


class SegmentLog:
    """Append-only JSON-lines segments in ``folder``; ``commit`` hands closed ones to ``write`` (one table append
    per segment) and ``committed(ids)`` says which of those segment ids the table holds already."""

    def __init__(self, folder: Path, write: Callable[[pa.Table], Any],
                 committed: Callable[[list[str]], Iterable[str]], *,
                 max_records: int = 10_000, schema: pa.Schema | None = None) -> None:
        """``schema``: the records' columns and types (fields a record lacks are null), so every segment
        commits with the same schema whatever its records hold; without it the types are inferred."""
        self.folder, self._write, self._committed, self.max_records = folder, write, committed, max_records
        self._parse = pa_json.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore") \
            if schema is not None else None
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock = threading.Lock()
        self._segment: str | None = None
        self._handle: Any = None
        self._count = 0

    def append(self, records: list[dict[str, Any]]) -> None:
        """Write ``records`` to the open segment and flush them to the OS before returning."""
        data = b"".join(orjson.dumps(r, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NAIVE_UTC) + b"\n"
                        for r in records)
        with self._lock:
            if self._handle is None:
                self._segment = uuid.uuid4().hex
                fd = os.open(self._path(self._segment, "open"), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND,
                             0o600)
                self._handle = os.fdopen(fd, "ab", buffering=0)
            self._handle.write(data)  # unbuffered: in the kernel when this returns, so SIGKILL cannot lose it
            self._count += len(records)
            full = self._detach() if self._count >= self.max_records else None
        if full is not None:
            self._seal(*full)

    def commit(self) -> int:
        """Close the open segment and commit every closed one; returns the rows committed."""
        self.rotate()
        return self.commit_closed()

    def rotate(self) -> None:
        """Close the open segment (fsynced), so that a committer, here or in another process, can take it. Only
        the swap holds the lock: appends go on to a new segment while the old one is fsynced."""
        with self._lock:
            detached = self._detach()
        if detached is not None:
            self._seal(*detached)

    def recover(self) -> int:
        """At start: segments a killed process left open are closed, then everything is committed once."""
        for path in sorted(self.folder.glob("*.open")):
            os.replace(path, path.with_suffix(".closed"))
        return self.commit_closed()

    def close(self) -> None:
        self.commit()

    # -- internals -------------------------------------------------------------------------------------------

    def _path(self, segment: str, state: str) -> Path:
        return self.folder / f"{segment}.{state}"

    def _detach(self) -> tuple[Any, str] | None:
        """Take the open segment out (the next append opens a new one); under the lock."""
        if self._handle is None or self._segment is None:
            return None
        detached = (self._handle, self._segment)
        self._handle, self._segment, self._count = None, None, 0
        return detached

    def _seal(self, handle: Any, segment: str) -> None:
        """fsync, close, and mark a detached segment closed: ready to commit."""
        os.fsync(handle.fileno())
        handle.close()
        os.replace(self._path(segment, "open"), self._path(segment, "closed"))

    def commit_closed(self) -> int:
        """Commit every closed segment not yet in the table (any process may: see the module docstring)."""
        with open(self.folder / "commit.lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, however this process ends
            return self._commit_closed()

    def _commit_closed(self) -> int:
        """Each closed segment is renamed ``.committing``, written, then deleted: only a segment a committer died
        with (still ``.committing``) needs the table asked whether it landed, so a commit costs the same however
        large the table grows."""
        rows = 0
        interrupted = sorted(self.folder.glob("*.committing"))
        done = set(self._committed([p.stem for p in interrupted])) if interrupted else set()
        for path in interrupted:
            if path.stem not in done:
                rows += self._write_segment(path)
            path.unlink()
        for path in sorted(self.folder.glob("*.closed")):
            committing = path.with_suffix(".committing")
            os.replace(path, committing)
            rows += self._write_segment(committing)
            committing.unlink()
        return rows

    def _write_segment(self, path: Path) -> int:
        data = path.read_bytes()
        data = data[:data.rfind(b"\n") + 1]  # a torn last line was never acknowledged: append had not returned
        if not data:
            return 0
        table = pa_json.read_json(pa.BufferReader(data), parse_options=self._parse)  # vectorised
        table = table.append_column(SEGMENT_COLUMN, pa.array([path.stem] * table.num_rows, pa.string()))
        self._write(table)
        return table.num_rows
