"""Online feature storage: the latest value per (namespace, entity key), as opaque bytes, chosen by URL.

Serving reads a few keys per request, so this layer only stores and returns bytes, as fast as the backend
allows; encodings, freshness and feature views belong to ``keel.features``.

* ``sqlite:////abs/path/online.db``: one ``WITHOUT ROWID`` table keyed by (namespace, key). WAL and a
  busy timeout make it safe across processes; one connection per thread makes it safe across threads.
* ``redis://[user:password@]host:port/db`` (``rediss://`` for TLS): one string key per row,
  ``keel:online:<namespace length in UTF-8 bytes>:<namespace>:<key>`` holding ``ts (8 bytes, big-endian,
  signed) + payload``. The length prefix makes the split unambiguous, so no two (namespace, key) pairs
  share a Redis key whatever characters they hold. There is no per-namespace hash or index set: the hot
  paths touch the row keys only, and nothing secondary can drift from the rows (eviction, TTLs, a manual
  DEL). ``count``, ``delete_namespace`` and ``namespaces`` are therefore admin operations that SCAN the
  database (time linear in its size); never call them while serving. Standalone Redis only (no Cluster).

"Newer wins" is enforced by the store atomically per row (the upsert's WHERE on SQLite, a Lua script on
Redis), so concurrent materialisations never replace a value with an older one; on equal timestamps the
incoming value wins. Rows of one batch apply in order, so a repeated key counts once per write.
"""

from __future__ import annotations

import os
import re
import sqlite3
import struct
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from itertools import repeat
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import unquote, urlsplit, urlunsplit

import numpy as np
import numpy.typing as npt
import redis
from redis.exceptions import RedisError

from keel.errors import InvalidInput, StorageError

__all__ = ["OnlineStore", "RedisOnlineStore", "SQLiteOnlineStore", "open_online_store"]

Timestamps = npt.NDArray[np.int64] | Sequence[int]
Row = tuple[int, bytes]
_URL_HELP = "use sqlite:////absolute/path/online.db or redis://[user:password@]host:port/db"
_TS = struct.Struct(">q")


@runtime_checkable
class OnlineStore(Protocol):
    """Latest value per entity key, per namespace (a feature view version), as opaque bytes."""

    url: str  # credentials masked: safe to log and show

    def write(self, namespace: str, keys: Sequence[str], timestamps_us: Timestamps, payloads: Sequence[bytes]) -> int:
        """Upsert a batch unless a stored row is newer (equal: incoming wins); return rows written."""

    def read(self, namespace: str, keys: Sequence[str]) -> list[Row | None]:
        """``(timestamp_us, payload)`` per key, in the order given (repeats allowed); None if never written."""

    def count(self, namespace: str) -> int: ...

    def delete_namespace(self, namespace: str) -> int: ...  # returns how many rows were removed

    def namespaces(self) -> list[str]: ...  # sorted; those holding at least one row

    def close(self) -> None: ...


def open_online_store(url: str) -> OnlineStore:
    """The online store a URL names: ``sqlite:////abs/path`` or ``redis://host:port/db`` (``rediss://``)."""
    scheme = url.partition("://")[0].lower() if isinstance(url, str) else ""
    if scheme == "sqlite":
        return SQLiteOnlineStore(url)
    if scheme in ("redis", "rediss"):
        return RedisOnlineStore(url)
    shown = _redact(url) if isinstance(url, str) else repr(url)
    raise InvalidInput(f"unsupported online store URL {shown!r}: {_URL_HELP}")


class SQLiteOnlineStore:
    """The embedded backend: one table in a local SQLite file (WAL), one connection per thread."""

    _CHUNK = 900  # keys per SELECT: with the namespace, under SQLite's oldest 999-parameter limit
    _UPSERT = (
        "INSERT INTO online_values (namespace, key, ts, payload) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (namespace, key) DO UPDATE SET ts = excluded.ts, payload = excluded.payload "
        "WHERE excluded.ts >= online_values.ts"
    )
    _ONE = "SELECT ts, payload FROM online_values WHERE namespace = ? AND key = ?"
    _NAMESPACES = (  # a skip-scan of the primary key: one seek per namespace, not a full scan
        "WITH RECURSIVE ns(n) AS (SELECT min(namespace) FROM online_values UNION ALL "
        "SELECT (SELECT min(namespace) FROM online_values WHERE namespace > ns.n) FROM ns WHERE ns.n IS NOT NULL) "
        "SELECT n FROM ns WHERE n IS NOT NULL"
    )

    def __init__(self, url: str, *, busy_timeout_ms: int = 30_000) -> None:
        self.url = url
        self._path = url.partition("://")[2][1:]  # sqlite:///<path>, SQLAlchemy's spelling
        if not self._path.startswith("/"):
            raise InvalidInput(f"online store URL {url!r} needs an absolute path (four slashes): {_URL_HELP}")
        self._busy_ms = int(busy_timeout_ms)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._finalizers: set[weakref.finalize] = set()
        self._closed = False
        self._selects: dict[int, str] = {}
        try:
            _create_private_file(Path(self._path))
        except OSError as exc:
            raise StorageError(f"online store {url} cannot be created: {_one_line(exc)}") from exc
        with self._errors("open"):
            self._conn().execute(
                "CREATE TABLE IF NOT EXISTS online_values (namespace TEXT NOT NULL, key TEXT NOT NULL, "
                "ts INTEGER NOT NULL, payload BLOB NOT NULL, PRIMARY KEY (namespace, key)) WITHOUT ROWID"
            )

    def write(self, namespace: str, keys: Sequence[str], timestamps_us: Timestamps, payloads: Sequence[bytes]) -> int:
        ts = _check_batch(namespace, keys, timestamps_us, payloads)
        if not ts:
            return 0
        with self._errors("write"):
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")  # take the write lock now, under the busy timeout
            try:
                written = conn.executemany(self._UPSERT, zip(repeat(namespace), keys, ts, payloads)).rowcount
                conn.execute("COMMIT")
            finally:
                if conn.in_transaction:
                    conn.rollback()
            return written

    def read(self, namespace: str, keys: Sequence[str]) -> list[Row | None]:
        n = len(keys)
        try:
            try:
                conn = self._local.conn
            except AttributeError:
                conn = self._conn()
            if n == 1:
                return [conn.execute(self._ONE, (namespace, *keys)).fetchone()]
            if n <= self._CHUNK:
                rows = conn.execute(self._select(n), (namespace, *keys)).fetchall() if n else []
            else:
                keys, rows = list(keys), []
                conn.execute("BEGIN")  # one snapshot for every chunk
                try:
                    for i in range(0, n, self._CHUNK):
                        chunk = keys[i : i + self._CHUNK]
                        rows += conn.execute(self._select(len(chunk)), (namespace, *chunk)).fetchall()
                finally:
                    conn.rollback()
        except (sqlite3.Error, UnicodeEncodeError) as exc:
            _refuse_bad_keys(namespace, keys)
            raise StorageError(f"online store {self.url} failed to read: {_one_line(exc)}") from exc
        found = {k: (t, p) for k, t, p in rows}
        return list(map(found.get, keys))

    def count(self, namespace: str) -> int:
        with self._errors("count"):
            sql = "SELECT count(*) FROM online_values WHERE namespace = ?"
            return int(self._conn().execute(sql, (namespace,)).fetchone()[0])

    def delete_namespace(self, namespace: str) -> int:
        with self._errors("delete a namespace"):
            return self._conn().execute("DELETE FROM online_values WHERE namespace = ?", (namespace,)).rowcount

    def namespaces(self) -> list[str]:
        with self._errors("list namespaces"):
            return [n for (n,) in self._conn().execute(self._NAMESPACES)]

    def close(self) -> None:
        with self._lock:
            self._closed, finalizers, self._finalizers = True, self._finalizers, set()
        for close_connection in finalizers:
            close_connection()

    def _select(self, n: int) -> str:
        sql = self._selects.get(n)
        if sql is None:
            marks = ", ".join("?" * n)
            sql = f"SELECT key, ts, payload FROM online_values WHERE namespace = ? AND key IN ({marks})"
            self._selects[n] = sql
        return sql

    def _conn(self) -> sqlite3.Connection:
        """This thread's connection; closed when the thread ends (its token is collected) or the store closes."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        with self._lock:
            if self._closed:
                raise StorageError(f"online store {self.url} is closed")
            self._finalizers = {f for f in self._finalizers if f.alive}
        seconds = self._busy_ms / 1000
        conn = sqlite3.connect(self._path, timeout=seconds, isolation_level=None, check_same_thread=False,
                               cached_statements=1024)  # one cached SELECT per key count
        try:
            conn.execute(f"PRAGMA busy_timeout = {self._busy_ms}")
            _enable_wal(conn, seconds)
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA mmap_size = 268435456")  # reads from the page cache without a syscall each
        except BaseException:
            conn.close()
            raise
        token = self._local.token = _ThreadToken()
        with self._lock:
            self._finalizers.add(weakref.finalize(token, conn.close))
        self._local.conn = conn
        return conn

    def _errors(self, operation: str) -> AbstractContextManager[None]:
        return _translate(f"online store {self.url} failed to {operation}", sqlite3.Error, _one_line)


class RedisOnlineStore:
    """The team backend: one Redis string per row; see the module docstring for the key layout."""

    _CHUNK = 1000  # rows per Lua call, so no single call blocks Redis for long
    _PREFIX = "keel:online:"
    # Newer wins, atomically per key. ARGV[i] = ts (8 bytes, big-endian, signed) + payload for KEYS[i];
    # timestamps compare as (signed high word, unsigned low word): exact for every int64.
    _WRITE_LUA = """
local written = 0
for i, key in ipairs(KEYS) do
  local old, put = redis.call('GETRANGE', key, 0, 7), true
  if #old == 8 then
    local oh, ol = struct.unpack('>i4I4', old)
    local nh, nl = struct.unpack('>i4I4', ARGV[i])
    put = nh > oh or (nh == oh and nl >= ol)
  end
  if put then redis.call('SET', key, ARGV[i]); written = written + 1 end
end
return written
"""

    def __init__(self, url: str) -> None:
        self.url = _redact(url)
        self._prefixes: dict[str, str] = {}
        self._secrets: list[str] = []
        try:
            parts = urlsplit(url)
            self._secrets = [s for s in {parts.password or "", unquote(parts.password or "")} if s]
            _ = parts.port  # raises ValueError on a port that is not a number
            if not re.fullmatch(r"/?\d*", parts.path):  # redis-py would silently use database 0
                raise ValueError("the database must be a number, as in /0")
            self._client = redis.Redis.from_url(url)
        except (ValueError, TypeError) as exc:
            raise InvalidInput(f"invalid online store URL {self.url!r} ({self._clean(exc)}): {_URL_HELP}") from None
        self._write = self._client.register_script(self._WRITE_LUA)
        with self._errors("connect"):
            self._client.ping()

    def write(self, namespace: str, keys: Sequence[str], timestamps_us: Timestamps, payloads: Sequence[bytes]) -> int:
        ts = _check_batch(namespace, keys, timestamps_us, payloads)
        prefix, pack, size = self._prefix(namespace), _TS.pack, self._CHUNK
        names = [prefix + k for k in keys]
        values = [pack(t) + p for t, p in zip(ts, payloads, strict=True)]
        with self._errors("write"):
            if len(names) <= size:
                return int(self._write(keys=names, args=values)) if names else 0
            pipe = self._client.pipeline(transaction=True)  # MULTI/EXEC: one round trip, applied as a whole
            for i in range(0, len(names), size):
                self._write(keys=names[i : i + size], args=values[i : i + size], client=pipe)
            return sum(int(n) for n in pipe.execute())

    def read(self, namespace: str, keys: Sequence[str]) -> list[Row | None]:
        if len(keys) == 0:
            return []
        try:
            prefix = self._prefix(namespace)
            with self._errors("read"):
                values = self._client.execute_command("MGET", *[prefix + k for k in keys])
        except (TypeError, AttributeError, UnicodeEncodeError):
            _refuse_bad_keys(namespace, keys)
            raise
        unpack = _TS.unpack_from
        return [None if v is None else (unpack(v)[0], v[8:]) for v in values]

    def count(self, namespace: str) -> int:
        with self._errors("count"):  # SCAN may repeat a key while Redis resizes, hence the set
            return len(set(self._scan(self._prefix(namespace))))

    def delete_namespace(self, namespace: str) -> int:
        removed, batch = 0, []
        with self._errors("delete a namespace"):
            for name in self._scan(self._prefix(namespace)):
                batch.append(name)
                if len(batch) == self._CHUNK:
                    removed, batch = removed + self._client.unlink(*batch), []
            return removed + (self._client.unlink(*batch) if batch else 0)

    def namespaces(self) -> list[str]:
        found: set[str] = set()
        with self._errors("list namespaces"):
            for name in self._scan(self._PREFIX):
                head, _, rest = name[len(self._PREFIX) :].partition(b":")
                size = int(head) if head.isdigit() else -1
                if 0 <= size < len(rest) and rest[size : size + 1] == b":":
                    found.add(rest[:size].decode("utf-8", "replace"))
        return sorted(found)

    def close(self) -> None:
        self._client.close()

    def _prefix(self, namespace: str) -> str:
        prefix = self._prefixes.get(namespace)
        if prefix is None:
            if len(self._prefixes) > 4096:  # bounded: namespaces are few, but a caller could pass many
                self._prefixes.clear()
            prefix = self._prefixes[namespace] = f"{self._PREFIX}{len(namespace.encode())}:{namespace}:"
        return prefix

    def _scan(self, prefix: str) -> Iterator[bytes]:
        """Every key starting with ``prefix`` (glob characters escaped, so a '*' in a namespace stays literal)."""
        pattern = re.sub(rb"([\\*?\[\]])", rb"\\\1", prefix.encode()) + b"*"
        return self._client.scan_iter(match=pattern, count=5000)

    def _clean(self, exc: BaseException) -> str:
        text = _one_line(exc)
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _errors(self, operation: str) -> AbstractContextManager[None]:
        return _translate(f"online store {self.url} failed to {operation}", RedisError, self._clean)


class _ThreadToken:
    """Lives in one thread's local storage; collected when the thread ends, closing its connection."""


def _check_batch(namespace: str, keys: Sequence[str], timestamps_us: Timestamps, payloads: Sequence[Any]) -> list[int]:
    """Refuse a malformed batch before anything is written; return the timestamps as Python ints."""
    ts = np.asarray(timestamps_us)
    if ts.ndim != 1 or not len(keys) == len(ts) == len(payloads):
        sizes = f"{len(keys)} keys, {ts.size} timestamps, {len(payloads)} payloads"
        raise InvalidInput(f"online write needs one timestamp and one payload per key; got {sizes}")
    if ts.size and (ts.dtype.kind not in "iu" or (ts.dtype.kind == "u" and ts.max() > np.iinfo(np.int64).max)):
        raise InvalidInput(f"online write timestamps must be int64 microseconds since the epoch; got {ts.dtype}")
    _refuse_bad_keys(namespace, keys)
    if not all(isinstance(p, bytes | bytearray | memoryview) for p in payloads):
        raise InvalidInput("online write payloads must be bytes")
    return ts.astype(np.int64, copy=False).tolist()


def _refuse_bad_keys(namespace: str, keys: Sequence[str]) -> None:
    if not (isinstance(namespace, str) and all(isinstance(k, str) for k in keys)):
        raise InvalidInput("online store namespaces and keys must be str")
    try:
        "".join((namespace, *keys)).encode()
    except UnicodeEncodeError:
        raise InvalidInput("online store namespaces and keys must be valid Unicode (no lone surrogates)") from None


@contextmanager
def _translate(what: str, errors: type[Exception], clean: Callable[[BaseException], str]) -> Iterator[None]:
    """Turn a backend's errors into StorageError with a one-line, password-free message."""
    try:
        yield
    except errors as exc:
        raise StorageError(f"{what}: {clean(exc)}") from exc


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _redact(url: str) -> str:
    """The URL without password or query string (which may carry one), for messages and logs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url.partition("://")[0] + "://***"
    userinfo, at, host = parts.netloc.rpartition("@")
    if at:
        host = (userinfo.partition(":")[0] + ":***@" if ":" in userinfo else "***@") + host
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _create_private_file(path: Path) -> None:
    """Create the database file 0600 and missing folders 0700 (SQLite gives -wal and -shm the file's mode)."""
    missing, folder = [], path.parent
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for folder in reversed(missing):
        with suppress(FileExistsError):  # another process made it first
            os.mkdir(folder, 0o700)
            os.chmod(folder, 0o700)
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _enable_wal(conn: sqlite3.Connection, timeout_s: float) -> None:
    """Switch to WAL once (it persists); processes racing on a fresh file get "locked" at once, so retry."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
