"""One contract for ArtifactStore, run against every backend: a local folder and fsspec (memory://)."""

from __future__ import annotations

import hashlib
import os
import stat
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import suppress
from pathlib import Path

import fsspec
import pytest

from keel.errors import Conflict, InvalidInput, NotFound
from keel.storage.artifacts import ArtifactInfo, ArtifactStore

MakeStore = Callable[[str], ArtifactStore]


@pytest.fixture(params=["local", "memory"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MakeStore]:
    """Build stores on the backend under test; memory roots are unique per test and removed after."""
    base = str(tmp_path / "artifacts") if request.param == "local" else f"memory://keel-{uuid.uuid4().hex}"
    urls: list[str] = []

    def make(suffix: str = "") -> ArtifactStore:
        urls.append(base + suffix)
        return ArtifactStore(base + suffix)

    yield make
    if request.param == "memory":
        for url in urls:
            fs, path = fsspec.core.url_to_fs(url)
            with suppress(FileNotFoundError):
                fs.rm(path, recursive=True)


@pytest.fixture
def store(make_store: MakeStore) -> ArtifactStore:
    return make_store("")


def raw_files(store: ArtifactStore) -> list[str]:
    """Every file really under the root, temp files included, relative to the root."""
    fs, root = fsspec.core.url_to_fs(store.url)
    root = root.rstrip("/")
    return sorted(p[len(root) :].lstrip("/") for p in fs.find(root))


def test_put_get_round_trip(store: ArtifactStore) -> None:
    data = b"\x00model bytes\xff" * 100
    info = store.put_bytes("runs/42/model.bin", data)
    assert info == ArtifactInfo(
        key="runs/42/model.bin",
        uri=store.uri("runs/42/model.bin"),
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )
    assert info.uri.startswith("file://" if store.is_local else "memory://")
    assert info.uri.endswith("/runs/42/model.bin")
    assert store.get_bytes("runs/42/model.bin") == data
    with store.open("runs/42/model.bin") as f:
        assert f.read() == data
    with pytest.raises(AttributeError):
        info.size = 0  # type: ignore[misc]


def test_empty_and_overwrite(store: ArtifactStore) -> None:
    assert store.put_bytes("e", b"").size == 0
    assert store.get_bytes("e") == b""
    store.put_bytes("k", b"first")
    store.put_bytes("k", b"second")
    assert store.get_bytes("k") == b"second"
    assert raw_files(store) == ["e", "k"]


def test_put_file_streams_a_multi_megabyte_file(store: ArtifactStore, tmp_path: Path) -> None:
    data = os.urandom(5 * 1024 * 1024 + 12345)  # not a multiple of the chunk size
    src = tmp_path / "model.bin"
    src.write_bytes(data)
    info = store.put_file("models/m.bin", src)
    assert info.size == len(data)
    assert info.sha256 == hashlib.sha256(data).hexdigest()
    assert info.uri == store.uri("models/m.bin")
    assert store.get_bytes("models/m.bin") == data


def test_open_write_appears_only_on_clean_exit(store: ArtifactStore) -> None:
    with store.open_write("a/b.bin") as f:
        f.write(b"part one, ")
        f.write(b"part two")
        assert not store.exists("a/b.bin")
        assert store.list() == []
    assert store.get_bytes("a/b.bin") == b"part one, part two"
    assert raw_files(store) == ["a/b.bin"]


def test_open_write_failure_leaves_no_file_and_no_temp(store: ArtifactStore) -> None:
    with pytest.raises(RuntimeError, match="boom"), store.open_write("a/b.bin") as f:
        f.write(b"half")
        raise RuntimeError("boom")
    assert not store.exists("a/b.bin")
    assert store.list() == []
    assert raw_files(store) == []


def test_failed_overwrite_keeps_the_old_content(store: ArtifactStore) -> None:
    store.put_bytes("k", b"old")
    with pytest.raises(RuntimeError), store.open_write("k") as f:
        f.write(b"new but broken")
        raise RuntimeError
    assert store.get_bytes("k") == b"old"
    assert raw_files(store) == ["k"]


def test_exists_delete_list(store: ArtifactStore) -> None:
    keys = ["runs/1/model.bin", "runs/1/metrics.json", "runs/10/x", "runs/2/y", "top.txt"]
    for key in reversed(keys):
        store.put_bytes(key, key.encode())
    assert store.list() == sorted(keys)
    assert store.list("runs/1/") == ["runs/1/metrics.json", "runs/1/model.bin"]
    assert store.list("runs/1") == ["runs/1/metrics.json", "runs/1/model.bin", "runs/10/x"]
    assert store.list("t") == ["top.txt"]
    assert store.list("nope/") == []
    assert store.exists("top.txt") and not store.exists("runs") and not store.exists("nope")
    store.delete("runs/1/model.bin")
    assert not store.exists("runs/1/model.bin")
    assert store.list("runs/1/") == ["runs/1/metrics.json"]


def test_stores_with_sibling_roots_do_not_mix(make_store: MakeStore) -> None:
    a, a10 = make_store(""), make_store("10")
    a.put_bytes("x", b"a")
    a10.put_bytes("y", b"a10")
    assert a.list() == ["x"] and a10.list() == ["y"]
    assert not a.exists("y")


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.get_bytes("x/y"),
        lambda s: s.open("x/y"),
        lambda s: s.delete("x/y"),
        lambda s: s.get_bytes("runs"),
        lambda s: s.delete("runs"),
    ],
    ids=["get_bytes", "open", "delete", "get_folder", "delete_folder"],
)
def test_missing_key_is_not_found(store: ArtifactStore, call: Callable[[ArtifactStore], object]) -> None:
    store.put_bytes("runs/1", b"x")
    with pytest.raises(NotFound, match=r"artifact '(x/y|runs)' not found in ") as err:
        call(store)
    assert store.url in err.value.message


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.put_bytes("../x", b""),
        lambda s: s.get_bytes("/etc/passwd"),
        lambda s: s.open("a/../../b"),
        lambda s: s.exists("%2e%2e/x"),
        lambda s: s.delete("a\\b"),
        lambda s: s.uri("~/x"),
        lambda s: s.list("../"),
        lambda s: s.open_write("a//b").__enter__(),
    ],
)
def test_every_method_refuses_bad_keys(store: ArtifactStore, call: Callable[[ArtifactStore], object]) -> None:
    with pytest.raises(InvalidInput):
        call(store)
    assert raw_files(store) == []


def test_file_and_folder_keys_conflict(store: ArtifactStore) -> None:
    store.put_bytes("a", b"file")
    with pytest.raises(Conflict):
        store.put_bytes("a/b", b"under a file")
    store.put_bytes("d/x", b"x")
    with pytest.raises(Conflict):
        store.put_bytes("d", b"over a folder")
    assert raw_files(store) == ["a", "d/x"]


def test_concurrent_writers_never_mix_content(store: ArtifactStore) -> None:
    def write(i: int) -> None:
        store.put_bytes("shared.bin", bytes([i]) * 256 * 1024)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    data = store.get_bytes("shared.bin")
    assert len(data) == 256 * 1024 and len(set(data)) == 1
    assert raw_files(store) == ["shared.bin"]


def test_local_permissions_are_private(make_store: MakeStore, tmp_path: Path) -> None:
    old = os.umask(0)  # even a permissive umask must not widen them
    try:
        store = make_store("-private")
        if not store.is_local:
            pytest.skip("file modes exist only on the local backend")
        store.put_bytes("a/b/c.bin", b"x")
        src = tmp_path / "src.bin"
        src.write_bytes(b"y")
        store.put_file("a/d.bin", src)
        with store.open_write("e.bin") as f:
            f.write(b"z")
    finally:
        os.umask(old)
    root = Path(store.root)
    for folder in [root, root / "a", root / "a" / "b"]:
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    for file in [root / "a" / "b" / "c.bin", root / "a" / "d.bin", root / "e.bin"]:
        assert stat.S_IMODE(file.stat().st_mode) == 0o600, file
