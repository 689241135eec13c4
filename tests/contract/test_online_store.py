"""One contract for OnlineStore, run against every backend: SQLite (always) and Redis (KEEL_TEST_REDIS_URL)."""

from __future__ import annotations

import os
import random
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from conftest import REDIS_URL, needs_redis
from keel.errors import InvalidInput, StorageError
from keel.storage.online import OnlineStore, open_online_store

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=[needs_redis, pytest.mark.redis])])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'online' / 'online.db'}" if request.param == "sqlite" else str(REDIS_URL)


@pytest.fixture
def prefix() -> str:
    """Every namespace a test uses starts with this, so tests never meet on a shared Redis database."""
    return f"t{uuid.uuid4().hex[:12]}:"


@pytest.fixture
def store(url: str, prefix: str) -> Iterator[OnlineStore]:
    s = open_online_store(url)
    yield s
    for namespace in s.namespaces():
        if namespace.startswith(prefix):
            s.delete_namespace(namespace)
    s.close()


@pytest.fixture
def ns(prefix: str) -> Callable[[str], str]:
    return lambda name="": prefix + name


def test_implements_the_protocol(store: OnlineStore) -> None:
    assert isinstance(store, OnlineStore)
    assert isinstance(store.url, str)


def test_write_then_read_in_order_with_missing_as_none(store: OnlineStore, ns: Callable[[str], str]) -> None:
    assert store.write(ns("v"), ["a", "b", "c"], [1, 2, 3], [b"A", b"B", b"C"]) == 3
    assert store.read(ns("v"), ["c", "x", "a", "b"]) == [(3, b"C"), None, (1, b"A"), (2, b"B")]
    assert store.read(ns("v"), ["x"]) == [None]
    assert store.read(ns("v"), ["b"]) == [(2, b"B")]
    assert store.read(ns("v"), []) == []
    assert store.read(ns("never"), ["a", "b"]) == [None, None]


def test_read_returns_python_ints_and_bytes(store: OnlineStore, ns: Callable[[str], str]) -> None:
    store.write(ns("v"), ["a", "b"], np.array([7, 8], dtype=np.int64), [b"x", bytearray(b"y")])
    for ts, payload in store.read(ns("v"), ["a", "b"]) + store.read(ns("v"), ["a"]):  # type: ignore[misc]
        assert type(ts) is int and type(payload) is bytes


def test_duplicate_keys_in_read(store: OnlineStore, ns: Callable[[str], str]) -> None:
    store.write(ns("v"), ["a", "b"], [1, 2], [b"A", b"B"])
    a, b = (1, b"A"), (2, b"B")
    assert store.read(ns("v"), ["a", "a", "zz", "b", "a", "zz"]) == [a, a, None, b, a, None]


def test_duplicate_keys_in_one_write_apply_in_order(store: OnlineStore, ns: Callable[[str], str]) -> None:
    written = store.write(ns("v"), ["a", "a", "a", "a"], [5, 9, 3, 9], [b"5", b"9", b"3", b"9 again"])
    assert written == 3  # 5 inserted, 9 replaced it, 3 was older, the equal 9 replaced again
    assert store.read(ns("v"), ["a"]) == [(9, b"9 again")]


def test_newer_wins_and_equal_timestamp_overwrites(store: OnlineStore, ns: Callable[[str], str]) -> None:
    assert store.write(ns("v"), ["k"], [100], [b"first"]) == 1
    assert store.write(ns("v"), ["k"], [99], [b"older"]) == 0
    assert store.read(ns("v"), ["k"]) == [(100, b"first")]
    assert store.write(ns("v"), ["k"], [100], [b"same time"]) == 1
    assert store.read(ns("v"), ["k"]) == [(100, b"same time")]
    assert store.write(ns("v"), ["k"], [101], [b"newer"]) == 1
    assert store.read(ns("v"), ["k"]) == [(101, b"newer")]


def test_newer_wins_row_by_row_in_a_mixed_batch(store: OnlineStore, ns: Callable[[str], str]) -> None:
    store.write(ns("v"), ["a", "b", "c"], [10, 10, 10], [b"a10", b"b10", b"c10"])
    assert store.write(ns("v"), ["a", "b", "c", "d"], [9, 11, 10, 1], [b"a9", b"b11", b"c10'", b"d1"]) == 3
    assert store.read(ns("v"), ["a", "b", "c", "d"]) == [(10, b"a10"), (11, b"b11"), (10, b"c10'"), (1, b"d1")]


@pytest.mark.parametrize(
    ("older", "newer"),
    [(-1, 1), (-10, -5), (0, 1), (INT64_MIN, INT64_MAX), (INT64_MIN, INT64_MIN + 1), (INT64_MAX - 1, INT64_MAX),
     (2**32 - 1, 2**32), (-(2**32), -1), (-(2**32) - 1, -(2**32)), (1_700_000_000_000_000, 1_700_000_000_000_001)],
)
def test_newer_wins_over_the_whole_int64_range(
    store: OnlineStore, ns: Callable[[str], str], older: int, newer: int
) -> None:
    store.write(ns("v"), ["k"], [newer], [b"new"])
    assert store.write(ns("v"), ["k"], [older], [b"old"]) == 0
    assert store.read(ns("v"), ["k"]) == [(newer, b"new")]
    store.write(ns("w"), ["k"], [older], [b"old"])
    assert store.write(ns("w"), ["k"], [newer], [b"new"]) == 1
    assert store.read(ns("w"), ["k"]) == [(newer, b"new")]


def test_namespaces_are_isolated(store: OnlineStore, ns: Callable[[str], str]) -> None:
    store.write(ns("one"), ["k", "only-one"], [1, 1], [b"one", b"1"])
    store.write(ns("two"), ["k"], [2], [b"two"])
    assert store.read(ns("one"), ["k", "only-one"]) == [(1, b"one"), (1, b"1")]
    assert store.read(ns("two"), ["k", "only-one"]) == [(2, b"two"), None]
    assert store.delete_namespace(ns("two")) == 1
    assert store.read(ns("one"), ["k"]) == [(1, b"one")]


ODD_NAMES = ["", " ", ":", "::", "a:b", "a:b:c", "ñandú", "漢字", "🙂", "*", "a*", "ab", "[x]", "x", "a\\", "?",
             "\x00", "\t\n"]


def test_keys_and_namespaces_with_any_characters(store: OnlineStore, ns: Callable[[str], str]) -> None:
    for i, name in enumerate(ODD_NAMES):
        assert store.write(ns(name), ODD_NAMES, [i] * len(ODD_NAMES), [f"{i}|{k}".encode() for k in ODD_NAMES])
    for i, name in enumerate(ODD_NAMES):
        assert store.read(ns(name), ODD_NAMES) == [(i, f"{i}|{k}".encode()) for k in ODD_NAMES]
        assert store.count(ns(name)) == len(ODD_NAMES)
    assert {n for n in store.namespaces() if n.startswith(ns())} == {ns(n) for n in ODD_NAMES}


def test_colons_cannot_make_two_rows_collide(store: OnlineStore, ns: Callable[[str], str]) -> None:
    store.write(ns("a"), ["b:c"], [1], [b"namespace a, key b:c"])
    store.write(ns("a:b"), ["c"], [1], [b"namespace a:b, key c"])
    assert store.read(ns("a"), ["b:c"]) == [(1, b"namespace a, key b:c")]
    assert store.read(ns("a:b"), ["c"]) == [(1, b"namespace a:b, key c")]
    assert store.count(ns("a")) == store.count(ns("a:b")) == 1


def test_count_delete_and_list_namespaces(store: OnlineStore, ns: Callable[[str], str]) -> None:
    store.write(ns("one"), ["a", "b", "c"], [1, 1, 1], [b"", b"", b""])
    store.write(ns("two"), ["a", "b"], [1, 1], [b"", b""])
    store.write(ns("a*"), ["a"], [1], [b""])  # a glob character must not widen a namespace's match
    assert [store.count(ns(n)) for n in ("one", "two", "a*", "none")] == [3, 2, 1, 0]
    mine = sorted(n for n in store.namespaces() if n.startswith(ns()))
    assert mine == sorted([ns("one"), ns("two"), ns("a*")])
    assert store.delete_namespace(ns("one")) == 3
    assert store.delete_namespace(ns("one")) == 0
    assert store.delete_namespace(ns("none")) == 0
    assert store.count(ns("one")) == 0
    assert store.read(ns("one"), ["a", "b"]) == [None, None]
    assert ns("one") not in store.namespaces()
    assert store.read(ns("two"), ["a"]) == [(1, b"")]


def test_payloads_are_arbitrary_bytes(store: OnlineStore, ns: Callable[[str], str]) -> None:
    payloads = [b"", b"\x00", b"\x00" * 9, bytes(range(256)), b"\xff\xfe" * 50_000, b"tail\x00"]
    keys = [f"k{i}" for i in range(len(payloads))]
    store.write(ns("v"), keys, list(range(len(keys))), payloads)
    assert [row[1] for row in store.read(ns("v"), keys)] == payloads  # type: ignore[index]
    store.write(ns("v"), ["mv"], [1], [memoryview(b"view\x00")])
    assert store.read(ns("v"), ["mv"]) == [(1, b"view\x00")]


def test_empty_write_writes_nothing(store: OnlineStore, ns: Callable[[str], str]) -> None:
    assert store.write(ns("v"), [], [], []) == 0
    assert store.write(ns("v"), [], np.array([], dtype=np.int64), []) == 0
    assert store.count(ns("v")) == 0


@pytest.mark.parametrize(
    ("keys", "timestamps", "payloads"),
    [
        (["a", "b"], [1], [b"", b""]),
        (["a"], [1, 2], [b""]),
        (["a"], [1], [b"", b""]),
        (["a"], [1.5], [b""]),
        (["a"], ["1"], [b""]),
        (["a"], [2**64], [b""]),
        (["a"], np.array([2**63], dtype=np.uint64), [b""]),
        (["a"], [1], ["text"]),
        ([1], [1], [b""]),
        (["a"], [[1]], [b""]),
    ],
)
def test_malformed_batches_are_refused_before_writing(
    store: OnlineStore, ns: Callable[[str], str], keys: list, timestamps: list, payloads: list
) -> None:
    with pytest.raises(InvalidInput):
        store.write(ns("v"), keys, timestamps, payloads)
    assert store.count(ns("v")) == 0


def test_text_that_is_not_unicode_is_invalid_input(store: OnlineStore, ns: Callable[[str], str]) -> None:
    with pytest.raises(InvalidInput):
        store.write(ns("v"), ["ok", "\ud800"], [1, 1], [b"", b""])
    with pytest.raises(InvalidInput):
        store.write(ns("\udfff"), ["ok"], [1], [b""])
    with pytest.raises(InvalidInput):
        store.read(ns("v"), ["ok", "\ud800"])
    assert store.count(ns("v")) == 0


def test_a_large_write_in_batches(store: OnlineStore, ns: Callable[[str], str]) -> None:
    keys = [f"entity-{i}" for i in range(50_000)]
    for start in range(0, 50_000, 5_000):
        batch = keys[start : start + 5_000]
        ts = np.arange(start, start + 5_000, dtype=np.int64)
        assert store.write(ns("big"), batch, ts, [k.encode() for k in batch]) == 5_000
    assert store.count(ns("big")) == 50_000
    sample = keys[::997]
    assert store.read(ns("big"), [*sample, "missing"]) == [*((int(k[7:]), k.encode()) for k in sample), None]


def test_reads_of_more_keys_than_one_query_takes(store: OnlineStore, ns: Callable[[str], str]) -> None:
    keys = [str(i) for i in range(2_500)]
    store.write(ns("v"), keys[::2], list(range(0, 2_500, 2)), [k.encode() for k in keys[::2]])
    assert store.read(ns("v"), keys) == [(i, str(i).encode()) if i % 2 == 0 else None for i in range(2_500)]


def test_concurrent_writers_leave_the_newest_value(store: OnlineStore, ns: Callable[[str], str]) -> None:
    keys = [f"k{i}" for i in range(500)]
    errors: list[BaseException] = []

    def writer(worker: int) -> None:
        rounds = list(range(20))
        random.Random(worker).shuffle(rounds)  # newer and older batches arrive in any order
        try:
            for r in rounds:
                ts = r * 4 + worker
                store.write(ns("v"), keys, [ts] * len(keys), [f"{worker}:{ts}".encode()] * len(keys))
                store.read(ns("v"), keys[:10])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert store.read(ns("v"), keys) == [(79, b"3:79")] * len(keys)


def test_a_reopened_store_sees_earlier_writes(store: OnlineStore, url: str, ns: Callable[[str], str]) -> None:
    store.write(ns("v"), ["a"], [1], [b"kept"])
    other = open_online_store(url)
    try:
        assert other.read(ns("v"), ["a"]) == [(1, b"kept")]
        other.write(ns("v"), ["b"], [2], [b"from other"])
    finally:
        other.close()
    assert store.read(ns("v"), ["a", "b"]) == [(1, b"kept"), (2, b"from other")]


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "online.db",
        "/abs/path/online.db",
        "postgresql://user:secret@db:5432/keel",
        "memory://online",
        "sqlite://",
        "sqlite:///relative/online.db",
        "sqlite:///:memory:",
        "redis://127.0.0.1:notaport/0",
        "redis://user:secret@127.0.0.1:6379/notadb",
        None,
    ],
)
def test_bad_urls_are_invalid_input(bad: str) -> None:
    with pytest.raises(InvalidInput) as info:
        open_online_store(bad)
    assert "secret" not in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("url", ["redis://127.0.0.1:1/0", "redis://user:secret@127.0.0.1:1/0", "redis://:secret@127.0.0.1:1/0?password=secret"])
def test_unreachable_redis_is_a_storage_error_without_the_password(url: str) -> None:
    with pytest.raises(StorageError) as info:
        open_online_store(url)
    assert "127.0.0.1:1" in str(info.value)
    assert "secret" not in str(info.value) and "secret" not in repr(info.value.details)


def test_sqlite_unwritable_path_is_a_storage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(StorageError, match="a-file"):
        open_online_store(f"sqlite:///{blocker / 'online.db'}")
    with pytest.raises(StorageError):
        open_online_store(f"sqlite:///{tmp_path}")  # a folder, not a database file


def test_sqlite_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "new" / "deeper" / "online.db"
    store = open_online_store(f"sqlite:///{path}")
    store.write("v", ["a"], [1], [b""])
    store.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.parent.parent.stat().st_mode) == 0o700


def test_sqlite_closed_store_refuses_calls(tmp_path: Path) -> None:
    store = open_online_store(f"sqlite:///{tmp_path / 'online.db'}")
    store.write("v", ["a"], [1], [b""])
    store.close()
    with pytest.raises(StorageError):
        store.read("v", ["a"])
    with pytest.raises(StorageError):
        threading.Thread(target=store.count, args=("v",)).run()  # a thread that never had a connection


WRITER = """
import sys, time
from pathlib import Path
from keel.storage.online import open_online_store
url, worker, barrier = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
store = open_online_store(url)
(barrier / f"ready{worker}").touch()
while not (barrier / "go").exists():  # start together, so the writes really overlap
    time.sleep(0.005)
keys = [f"k{i}" for i in range(300)]
for r in range(60) if worker == 0 else reversed(range(60)):
    ts = r * 2 + worker
    store.write("shared", keys, [ts] * len(keys), [f"{worker}:{ts}".encode()] * len(keys))
store.close()
"""


@pytest.mark.slow
def test_sqlite_two_processes_newest_wins(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db' / 'online.db'}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    cmd = [sys.executable, "-c", WRITER, url]
    procs = [subprocess.Popen([*cmd, str(w), str(tmp_path)], env=env, stderr=subprocess.PIPE) for w in (0, 1)]
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"ready{w}").exists() for w in (0, 1)):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), "a writer did not start"
        time.sleep(0.01)
    (tmp_path / "go").touch()
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
    store = open_online_store(url)
    try:
        assert store.read("shared", [f"k{i}" for i in range(300)]) == [(119, b"1:119")] * 300
        assert store.count("shared") == 300
    finally:
        store.close()
