"""Artifact store: the bytes (models, plots, reports) behind one small interface, apart from metadata.

Metadata lives in the DB and says *what* an artifact is; this module only stores and returns bytes by
key, so the two can scale and fail separately (Metaflow's split). Every artifact path in keel is built
by :func:`safe_join`, the one place that turns a key into a path: a key is a relative POSIX path of
``[A-Za-z0-9_.=+-]`` segments, and anything that could climb out of the root (``..``, absolute paths,
backslashes, percent-encoding, drive letters, ``~``, control characters, symlinks) is refused before
any file is touched. Local roots use the OS directly (0600 files, 0700 folders, atomic temp + rename);
any other URL goes through fsspec.
"""

from __future__ import annotations

import builtins
import hashlib
import os
import re
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlparse
from urllib.request import url2pathname

from keel.errors import Conflict, InvalidInput, NotFound, StorageError, UnreadableFile

__all__ = ["ArtifactInfo", "ArtifactStore", "check_key", "safe_join"]

MAX_KEY_LENGTH = 1024
MAX_SEGMENT_LENGTH = 255
CHUNK_SIZE = 1024 * 1024
_TMP_PREFIX = "~keel-tmp-"  # '~' is not a key character, so a temp file can never shadow a key
_SEGMENT = re.compile(r"[A-Za-z0-9_.=+-]+")
_DRIVE = re.compile(r"[A-Za-z]:")
_RULE = "use a relative path of [A-Za-z0-9_.=+-] segments separated by '/'"


def check_key(key: str) -> list[str]:
    """Validate an artifact key and return its segments; raise InvalidInput saying why it is refused."""

    def bad(why: str) -> InvalidInput:
        shown = repr(key) if len(repr(key)) <= 100 else repr(key)[:100] + "..."  # never echo megabytes
        return InvalidInput(f"invalid artifact key {shown}: {why}; {_RULE}", details={"key": shown})

    if not isinstance(key, str):
        raise bad("a key must be a string")
    if not key:
        raise bad("the key is empty")
    if len(key) > MAX_KEY_LENGTH:
        raise bad(f"longer than {MAX_KEY_LENGTH} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in key):
        raise bad("NUL and control characters are not allowed")
    if "%" in key:
        raise bad("percent-encoded sequences ('%') are not allowed")
    if "\\" in key:
        raise bad("backslashes are not allowed")
    if key.startswith("/"):
        raise bad("absolute paths are not allowed")
    if key.startswith("~"):
        raise bad("'~' home-directory prefixes are not allowed")
    if _DRIVE.match(key):
        raise bad("drive letters are not allowed")
    segments = key.split("/")
    for seg in segments:
        if not seg:
            raise bad("empty segments ('//' or a leading/trailing '/') are not allowed")
        if not seg.strip("."):
            raise bad("'.', '..' and other all-dot segments are not allowed")
        if len(seg) > MAX_SEGMENT_LENGTH:
            raise bad(f"a segment is longer than {MAX_SEGMENT_LENGTH} characters")
        if not _SEGMENT.fullmatch(seg):
            char = next(c for c in seg if not _SEGMENT.fullmatch(c))
            raise bad(f"character {char!r} is not allowed")
    return segments


def _local_root(url: str) -> str | None:
    """The absolute local path for a plain path or file:// URL; None for any other URL."""
    if "://" not in url:
        return os.path.abspath(url)
    parsed = urlparse(url)
    if parsed.scheme != "file":
        return None
    if parsed.netloc not in ("", "localhost"):
        raise InvalidInput(f"file URL {url!r} names a remote host; use file:///absolute/path")
    return os.path.abspath(url2pathname(parsed.path))


def safe_join(root: str, key: str, *, local: bool | None = None) -> str:
    """Join a validated key under root: THE one path-join for every artifact path.

    For a local root (plain path or file:// URL) returns a filesystem path whose resolved real path is
    checked to stay inside the resolved root, so a symlink cannot lead out of it. For any other URL
    returns ``root/key``. ``local`` overrides the guess from the root (used for fsspec paths).
    """
    segments = check_key(key)
    local_root = _local_root(root) if local is None else os.path.abspath(root)
    if local is False or local_root is None:
        return root.rstrip("/") + "/" + "/".join(segments)
    path = os.path.join(local_root, *segments)
    real_root, real_path = os.path.realpath(local_root), os.path.realpath(path)
    if real_path == real_root or os.path.commonpath([real_root, real_path]) != real_root:
        raise InvalidInput(
            f"invalid artifact key {key!r}: it resolves to {real_path}, outside the artifact root "
            f"{real_root} (a symlink escape); remove the symlink",
            details={"key": key},
        )
    return path


@dataclass(frozen=True)
class ArtifactInfo:
    """What a write produced: the key, where it lives, its size and content hash."""

    key: str
    uri: str
    size: int
    sha256: str


class ArtifactStore:
    """Bytes by key under one root URL: a local folder, or any fsspec URL (``memory://``, ``s3://``...)."""

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None) -> None:
        if not url:
            raise InvalidInput("artifact store URL is empty; give a folder path or an fsspec URL")
        self.url = url
        local = _local_root(url)
        self.is_local = local is not None
        if local is not None:
            self.root, self._fs = local, None
            self._makedirs(local)
        else:
            import fsspec  # only non-local stores need it

            try:
                self._fs, path = fsspec.core.url_to_fs(url, **(storage_options or {}))
            except (ImportError, ValueError) as exc:
                raise InvalidInput(f"cannot open artifact store {url!r}: {exc}") from exc
            self.root = path.rstrip("/")

    def __repr__(self) -> str:
        return f"ArtifactStore({self.url!r})"

    def _path(self, key: str) -> str:
        return safe_join(self.root, key, local=self.is_local)

    def _not_found(self, key: str) -> NotFound:
        return NotFound(f"artifact {key!r} not found in {self.url}", details={"key": key})

    @staticmethod
    def _makedirs(path: str) -> None:
        """Create missing folders one by one with mode 0700 (umask-proof)."""
        missing: builtins.list[str] = []
        while not os.path.isdir(path):
            missing.append(path)
            path = os.path.dirname(path)
        for folder in reversed(missing):
            with suppress(FileExistsError):
                os.mkdir(folder, 0o700)
                os.chmod(folder, 0o700)

    def uri(self, key: str) -> str:
        """A URL naming the artifact, for metadata and lineage."""
        path = self._path(key)
        return Path(path).as_uri() if self._fs is None else self._fs.unstrip_protocol(path)

    @contextmanager
    def open_write(self, key: str) -> Iterator[IO[bytes]]:
        """Yield a binary file; the artifact appears only if the block exits cleanly (temp + rename)."""
        path = self._path(key)
        folder = os.path.dirname(path) if self._fs is None else path.rsplit("/", 1)[0]
        tmp = ""
        try:
            if self._fs is None:
                self._makedirs(folder)
                fd, tmp = tempfile.mkstemp(dir=folder, prefix=_TMP_PREFIX)  # created 0600
                f = os.fdopen(fd, "wb")
            else:
                tmp = f"{folder}/{_TMP_PREFIX}{uuid.uuid4().hex}"
                f = self._fs.open(tmp, "wb")
        except (FileExistsError, NotADirectoryError) as exc:
            raise Conflict(f"cannot write artifact {key!r}: a parent of it is an artifact") from exc
        except OSError as exc:
            raise StorageError(f"cannot write artifact {key!r} in {self.url}: {exc}") from exc
        try:
            with f:
                yield f
                if self._fs is None:
                    f.flush()
                    os.fsync(f.fileno())
            self._commit(key, tmp, path)
        except BaseException:
            with suppress(OSError):
                if self._fs is None:
                    os.unlink(tmp)
                else:
                    self._fs.rm_file(tmp)
            raise

    def _commit(self, key: str, tmp: str, path: str) -> None:
        folder = Conflict(f"cannot write artifact {key!r}: it is a folder of other artifacts")
        try:
            if self._fs is None:
                os.replace(tmp, path)
            elif self._fs.isdir(path):  # mv would move the temp file into the folder
                raise folder
            else:
                self._fs.mv(tmp, path)
        except (IsADirectoryError, FileExistsError) as exc:
            raise folder from exc
        except OSError as exc:
            raise StorageError(f"cannot write artifact {key!r} in {self.url}: {exc}") from exc

    def put_bytes(self, key: str, data: bytes) -> ArtifactInfo:
        """Store data under key (atomically), replacing any previous content."""
        with self.open_write(key) as f:
            f.write(data)
        return ArtifactInfo(key, self.uri(key), len(data), hashlib.sha256(data).hexdigest())

    def put_file(self, key: str, path: str | os.PathLike[str]) -> ArtifactInfo:
        """Copy a local file in chunks, hashing as it streams; never holds the whole file in memory."""
        digest, size = hashlib.sha256(), 0
        try:
            src = builtins.open(path, "rb")  # noqa: SIM115 - closed below; opened here to report it
        except OSError as exc:
            raise UnreadableFile(f"cannot read {os.fspath(path)!r} to store as {key!r}: {exc}") from exc
        with src, self.open_write(key) as f:
            while chunk := src.read(CHUNK_SIZE):
                digest.update(chunk)
                f.write(chunk)
                size += len(chunk)
        return ArtifactInfo(key, self.uri(key), size, digest.hexdigest())

    def open(self, key: str) -> IO[bytes]:
        """A binary file object to read the artifact; the caller closes it."""
        path = self._path(key)
        try:
            return builtins.open(path, "rb") if self._fs is None else self._fs.open(path, "rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise self._not_found(key) from exc

    def get_bytes(self, key: str) -> bytes:
        """The whole artifact as bytes."""
        if self._fs is not None:
            try:
                return self._fs.cat_file(self._path(key))
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
                raise self._not_found(key) from exc
        with self.open(key) as f:
            return f.read()

    def exists(self, key: str) -> bool:
        """True if an artifact (a file, not a folder of them) is stored under key."""
        path = self._path(key)
        return os.path.isfile(path) if self._fs is None else bool(self._fs.isfile(path))

    def delete(self, key: str) -> None:
        """Remove the artifact; NotFound if there is none."""
        path = self._path(key)
        if not self.exists(key):
            raise self._not_found(key)
        if self._fs is None:
            os.unlink(path)
        else:
            self._fs.rm_file(path)

    def list(self, prefix: str = "") -> builtins.list[str]:
        """Sorted keys that start with prefix (a plain string prefix, e.g. 'runs/42/' or 'runs/4')."""
        if prefix:
            check_key(prefix[:-1] if prefix.endswith("/") else prefix)
        folder_key = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        top = self._path(folder_key) if folder_key else self.root
        if self._fs is None:
            found = [os.path.join(d, n) for d, _, names in os.walk(top) for n in names]
            rels = [os.path.relpath(p, self.root).replace(os.sep, "/") for p in found]
        else:
            try:
                found = self._fs.find(top)
            except FileNotFoundError:
                found = []
            rels = [p[len(self.root) :].lstrip("/") for p in found]
        return sorted(r for r in rels if r.startswith(prefix) and _is_key(r))


def _is_key(key: str) -> bool:
    try:
        check_key(key)
    except InvalidInput:
        return False
    return True
