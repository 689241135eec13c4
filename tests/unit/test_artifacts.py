"""safe_join: every way out of the artifact root is refused; every accepted key stays inside it."""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keel.errors import InvalidInput, UnreadableFile, UserError
from keel.storage.artifacts import ArtifactStore, check_key, safe_join

TRAVERSALS = [
    "",
    "../x",
    "..",
    ".",
    "...",
    "a/..",
    "a/../../x",
    "a/b/../../../x",
    "/etc/passwd",
    "//server/share",
    "..%2fx",
    "%2e%2e/x",
    "%252e%252e/x",
    "a%2fb",
    "%00",
    "a\\..\\b",
    "..\\x",
    "a/./b",
    "./a",
    "a//b",
    "a/",
    "/",
    "C:/x",
    "C:x",
    "c:\\windows",
    "~/x",
    "~root/.ssh",
    "a\x00b",
    "a\nb",
    "a\tb",
    "a\x7fb",
    "a b",
    "a:b",
    "a?b",
    "a*b",
    "caf\u00e9",
    "\u2025/x",  # two-dot leader
    "\uff0e\uff0e/x",  # fullwidth dots
    "a" * 256,
    "a/" * 512 + "b",
]


@pytest.mark.parametrize("key", TRAVERSALS, ids=repr)
def test_safe_join_refuses_bad_keys(tmp_path: Path, key: str) -> None:
    with pytest.raises(InvalidInput) as err:
        safe_join(str(tmp_path), key)
    assert repr(key)[:60] in err.value.message
    assert isinstance(err.value, UserError) and err.value.http_status == 400


@pytest.mark.parametrize("key", TRAVERSALS, ids=repr)
def test_safe_join_refuses_bad_keys_on_url_roots(key: str) -> None:
    with pytest.raises(InvalidInput):
        safe_join("s3://bucket/prefix", key)


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("../x", "'..'"),
        ("/etc/passwd", "absolute"),
        ("%2e%2e/x", "percent"),
        ("a\\b", "backslash"),
        ("a\x00b", "control"),
        ("a//b", "empty segment"),
        ("C:/x", "drive letter"),
        ("~/x", "'~'"),
        ("a" * 256, "segment is longer than 255"),
        ("a/" * 600, "longer than 1024"),
        ("ab:c", "':'"),
    ],
)
def test_refusal_says_why(key: str, why: str) -> None:
    with pytest.raises(InvalidInput, match=why):
        check_key(key)


@pytest.mark.parametrize(
    "key", ["a", "a/b/c.txt", "runs/42/model.skops", "x=1/y+2/z-3_4.parquet", ".hidden", "a..b", "a" * 255]
)
def test_safe_join_accepts_good_keys(tmp_path: Path, key: str) -> None:
    assert safe_join(str(tmp_path), key) == os.path.join(tmp_path, *key.split("/"))


def test_longest_key_is_accepted_and_one_more_is_not() -> None:
    key = "/".join(["a" * 255] * 3 + ["b" * 250, "c" * 5])
    assert len(key) == 1024
    assert check_key(key)[-1] == "ccccc"
    with pytest.raises(InvalidInput, match="longer than 1024"):
        check_key(key + "c")


def test_safe_join_on_urls_and_file_urls(tmp_path: Path) -> None:
    assert safe_join("memory://root", "a/b") == "memory://root/a/b"
    assert safe_join("s3://bucket/prefix/", "a") == "s3://bucket/prefix/a"
    assert safe_join(tmp_path.as_uri(), "a/b") == str(tmp_path / "a" / "b")


def test_symlink_to_outside_folder_is_refused(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    outside.mkdir()
    store = ArtifactStore(str(root))
    (root / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(InvalidInput, match="outside the artifact root"):
        safe_join(str(root), "link/x")
    with pytest.raises(InvalidInput):
        store.put_bytes("link/x", b"pwned")
    with pytest.raises(InvalidInput), store.open_write("link/deeper/x") as f:
        f.write(b"pwned")
    assert list(outside.iterdir()) == []


def test_symlink_to_outside_file_is_refused(tmp_path: Path) -> None:
    root, secret = tmp_path / "root", tmp_path / "secret"
    secret.write_bytes(b"secret")
    store = ArtifactStore(str(root))
    (root / "f").symlink_to(secret)
    with pytest.raises(InvalidInput):
        store.put_bytes("f", b"pwned")
    with pytest.raises(InvalidInput):
        store.get_bytes("f")
    assert secret.read_bytes() == b"secret"


def test_symlink_to_root_itself_is_refused(tmp_path: Path) -> None:
    (tmp_path / "self").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(InvalidInput):
        safe_join(str(tmp_path), "self")


def test_symlinks_that_stay_inside_are_allowed(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "alias").symlink_to(real, target_is_directory=True)
    link_root = tmp_path.parent / (tmp_path.name + "-link")
    link_root.symlink_to(tmp_path, target_is_directory=True)
    assert safe_join(str(tmp_path), "alias/x") == str(tmp_path / "alias" / "x")
    store = ArtifactStore(str(link_root))
    store.put_bytes("real/y", b"ok")
    assert (real / "y").read_bytes() == b"ok"


def test_store_url_forms(tmp_path: Path) -> None:
    assert ArtifactStore(tmp_path.as_uri()).root == str(tmp_path)
    assert ArtifactStore(str(tmp_path)).is_local
    assert not ArtifactStore("memory://keel-unit-url-forms").is_local
    for bad in ["", "nosuchprotocol-xyz://x", "file://otherhost/x"]:
        with pytest.raises(InvalidInput):
            ArtifactStore(bad)


def test_put_file_streams_without_loading_the_file(tmp_path: Path) -> None:
    src = tmp_path / "big.bin"
    with open(src, "wb") as f:
        for _ in range(16):
            f.write(os.urandom(1024 * 1024))
    store = ArtifactStore(str(tmp_path / "store"))
    tracemalloc.start()
    try:
        store.put_file("big.bin", src)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 6 * 1024 * 1024


def test_put_file_with_missing_source_is_unreadable(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path / "store"))
    with pytest.raises(UnreadableFile, match=r"nope\.bin"):
        store.put_file("x", tmp_path / "nope.bin")


# -- properties -------------------------------------------------------------------------------------

NASTY = st.sampled_from(["/", ".", "..", "\\", "%", "%2e", ":", "~", "\x00", "\n", " ", "C:", "é", "//"])
KEYISH = st.lists(st.one_of(st.from_regex(r"[A-Za-z0-9_.=+-]{1,8}", fullmatch=True), NASTY), max_size=12)
SEGMENT = st.from_regex(r"[A-Za-z0-9_.=+-]{1,30}", fullmatch=True).filter(lambda s: s.strip("."))


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("artifact-root"))


def _inside(root: str, path: str) -> bool:
    real_root, real = os.path.realpath(root), os.path.realpath(path)
    return real != real_root and os.path.commonpath([real_root, real]) == real_root


@settings(max_examples=400, deadline=None)
@given(parts=KEYISH)
def test_any_accepted_key_joins_inside_root(root: str, parts: list[str]) -> None:
    key = "".join(parts)
    try:
        path = safe_join(root, key)
    except InvalidInput:
        return
    assert _inside(root, path)
    assert os.path.normpath(path) == path
    assert os.path.relpath(path, root).replace(os.sep, "/") == key


@settings(max_examples=200, deadline=None)
@given(segments=st.lists(SEGMENT, min_size=1, max_size=8))
def test_keys_of_valid_segments_are_accepted_and_inside(root: str, segments: list[str]) -> None:
    key = "/".join(segments)
    path = safe_join(root, key)
    assert _inside(root, path)
    assert safe_join("memory://r", key) == "memory://r/" + key
