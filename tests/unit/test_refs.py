"""refs.py: every documented ref form parses, canonical forms print back, bad refs say what is wrong."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keel.errors import InvalidRef
from keel.refs import KINDS, Ref, check_name, file_ref, parse_ref, to_utc

# ---------------------------------------------------------------- every form in the module docstring


def test_bare_name_is_latest() -> None:
    ref = parse_ref("listings")
    assert ref == Ref(name="listings")
    assert ref.is_latest
    assert ref.kind is None


def test_at_version() -> None:
    ref = parse_ref("listings@3")
    assert (ref.name, ref.version, ref.timestamp, ref.alias) == ("listings", 3, None, None)
    assert not ref.is_latest


def test_at_date_is_midnight_utc() -> None:
    ref = parse_ref("listings@2024-05-01")
    assert ref.timestamp == datetime(2024, 5, 1, tzinfo=UTC)
    assert ref.timestamp.utcoffset() == timedelta(0)
    assert ref.version is None and ref.alias is None


def test_at_timestamp_with_z() -> None:
    ref = parse_ref("listings@2024-05-01T12:00Z")
    assert ref.timestamp == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert ref.timestamp.tzinfo == UTC


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("listings@2024-05-01T12:00+02:00", datetime(2024, 5, 1, 10, 0, tzinfo=UTC)),
        ("listings@2024-05-01T12:00-05:30", datetime(2024, 5, 1, 17, 30, tzinfo=UTC)),
        ("listings@2024-05-01T01:00+03:00", datetime(2024, 4, 30, 22, 0, tzinfo=UTC)),
        ("listings@2024-05-01T12:00:30.250+00:00", datetime(2024, 5, 1, 12, 0, 30, 250_000, tzinfo=UTC)),
    ],
)
def test_at_timestamp_with_offset_is_converted_to_utc(text: str, expected: datetime) -> None:
    ref = parse_ref(text)
    assert ref.timestamp == expected
    assert ref.timestamp.tzinfo == UTC  # converted, not merely equal with a foreign zone


def test_at_naive_timestamp_is_taken_as_utc() -> None:
    ref = parse_ref("listings@2024-05-01T12:00")
    assert ref.timestamp == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert ref.timestamp.tzinfo == UTC


def test_at_alias() -> None:
    ref = parse_ref("price@champion")
    assert (ref.name, ref.alias, ref.version, ref.timestamp) == ("price", "champion", None, None)


def test_alias_may_contain_dash_and_underscore() -> None:
    assert parse_ref("price@shadow-2").alias == "shadow-2"
    assert parse_ref("price@_tmp").alias == "_tmp"


def test_slash_version() -> None:
    ref = parse_ref("price/4")
    assert (ref.name, ref.version) == ("price", 4)


@pytest.mark.parametrize("kind", sorted(KINDS - {"file"}))
def test_explicit_kind(kind: str) -> None:
    ref = parse_ref(f"{kind}:listings@3")
    assert (ref.kind, ref.name, ref.version) == (kind, "listings", 3)


def test_kind_argument_fills_in_but_does_not_override() -> None:
    assert parse_ref("listings@3", kind="table").kind == "table"
    assert parse_ref("split:listings@3", kind="table").kind == "split"


def test_model_kind_with_slash() -> None:
    ref = parse_ref("model:price/4")
    assert (ref.kind, ref.name, ref.version) == ("model", "price", 4)


def test_file_ref() -> None:
    ref = parse_ref("file:listings.csv@sha256:0123456789abcdef")
    assert (ref.kind, ref.name, ref.file_hash) == ("file", "listings.csv", "0123456789abcdef")


def test_file_ref_name_may_contain_at() -> None:
    ref = parse_ref("file:me@home.csv@sha256:deadbeef")
    assert (ref.name, ref.file_hash) == ("me@home.csv", "deadbeef")


def test_file_ref_helper_truncates_hash_and_parses_back() -> None:
    digest = "ab" * 32
    text = file_ref("listings.csv", digest)
    assert text == "file:listings.csv@sha256:" + digest[:16]
    assert parse_ref(text).file_hash == digest[:16]


def test_surrounding_whitespace_is_ignored() -> None:
    assert parse_ref("  listings@3\n") == parse_ref("listings@3")


def test_names_may_use_dots_dashes_and_digits() -> None:
    assert parse_ref("raw.listings-v2_0@1").name == "raw.listings-v2_0"
    assert parse_ref("2024_sales").name == "2024_sales"


# ---------------------------------------------------------------- printing


@pytest.mark.parametrize(
    "text",
    [
        "listings",
        "listings@3",
        "listings@0",
        "price@champion",
        "table:listings",
        "table:listings@3",
        "split:listings@12",
        "run:abc123",
        "model:price/4",
        "model:price@champion",
        "listings@2024-05-01T12:00:00.000000Z",
        "table:listings@2024-05-01T00:00:00.000000Z",
        "file:listings.csv@sha256:0123456789abcdef",
    ],
)
def test_canonical_forms_round_trip(text: str) -> None:
    assert str(parse_ref(text)) == text
    assert parse_ref(str(parse_ref(text))) == parse_ref(text)


@pytest.mark.parametrize(
    "text",
    ["listings@2024-05-01", "listings@2024-05-01T12:00+02:00", "price/4", "listings@2024-05-01T12:00"],
)
def test_non_canonical_forms_print_to_an_equivalent_ref(text: str) -> None:
    assert parse_ref(str(parse_ref(text))) == parse_ref(text)


def test_timestamp_prints_in_utc_with_z() -> None:
    assert str(parse_ref("listings@2024-05-01T12:00+02:00")) == "listings@2024-05-01T10:00:00.000000Z"


def test_model_version_prints_with_slash_other_kinds_with_at() -> None:
    assert str(parse_ref("price/4", kind="model")) == "model:price/4"
    assert str(parse_ref("listings/4", kind="table")) == "table:listings@4"


def test_ref_helpers() -> None:
    ref = parse_ref("listings@champion")
    assert ref.with_kind("table") == Ref(name="listings", kind="table", alias="champion")
    assert ref.at_version(5) == Ref(name="listings", version=5)
    assert parse_ref("table:listings@5").unversioned == Ref(name="listings", kind="table")


# ---------------------------------------------------------------- malformed refs


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("a@@1", "NAME@VERSION"),
        ("a@", "NAME@VERSION"),
        ("@3", "NAME@VERSION"),
        ("a b", "NAME@VERSION"),
        ("x:y", "unknown kind 'x'"),
        ("a@2024-13-45", "ISO 8601"),
        ("../x", "NAME@VERSION"),
        ("a/", "NAME@VERSION"),
        ("a/b", "NAME@VERSION"),
        ("a/-1", "NAME@VERSION"),
        ("a@-1", "a version number"),
        ("a@1.5", "a version number"),
        (".hidden", "NAME@VERSION"),
        ("Table:x", "NAME@VERSION"),
        ("file:x", "file:NAME@sha256:HEX"),
        ("file:x@sha256:", "file:NAME@sha256:HEX"),
        ("file:x@sha256:XYZ", "file:NAME@sha256:HEX"),
        ("file:@sha256:deadbeef", "file:NAME@sha256:HEX"),
    ],
)
def test_malformed_refs_raise_invalid_ref_with_a_hint(text: str, hint: str) -> None:
    with pytest.raises(InvalidRef) as info:
        parse_ref(text)
    assert hint in str(info.value)
    if text.strip():
        assert repr(text.strip()) in str(info.value) or text.strip() in str(info.value)


def test_unknown_kind_lists_the_known_ones() -> None:
    with pytest.raises(InvalidRef, match=r"known: .*table"):
        parse_ref("x:y")


@pytest.mark.parametrize("text", [None, 3, b"listings"])
def test_non_string_refs_are_invalid(text: object) -> None:
    with pytest.raises(InvalidRef):
        parse_ref(text)  # type: ignore[arg-type]


def test_unicode_superscript_digit_is_an_invalid_ref_not_a_crash() -> None:
    with pytest.raises(InvalidRef):
        parse_ref("a@²")


def test_file_ref_name_is_not_a_path() -> None:
    with pytest.raises(InvalidRef):
        parse_ref("file:../x@sha256:deadbeef")


@given(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=30))
def test_any_ascii_text_parses_or_raises_invalid_ref(text: str) -> None:
    try:
        ref = parse_ref(text)
    except InvalidRef:
        return
    assert isinstance(ref, Ref) and ref.name


# ---------------------------------------------------------------- check_name


@pytest.mark.parametrize("name", ["a", "listings", "raw.listings", "a-b_c", "_private", "0", "A9", "x" * 128])
def test_check_name_accepts(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize(
    "name", ["", ".", "..", ".hidden", "-x", "a b", "a/b", "a\\b", "a:b", "a@b", "é", "x" * 129, "a\x00"]
)
def test_check_name_rejects(name: str) -> None:
    with pytest.raises(InvalidRef, match="invalid table"):
        check_name(name, "table")


@pytest.mark.parametrize("name", [None, 3])
def test_check_name_rejects_non_strings(name: object) -> None:
    with pytest.raises(InvalidRef):
        check_name(name)  # type: ignore[arg-type]


def test_check_name_rejects_trailing_newline() -> None:
    with pytest.raises(InvalidRef):
        check_name("abc\n")


# ---------------------------------------------------------------- to_utc


def test_to_utc() -> None:
    naive = datetime(2024, 5, 1, 12)
    assert to_utc(naive) == datetime(2024, 5, 1, 12, tzinfo=UTC)
    plus2 = datetime(2024, 5, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    converted = to_utc(plus2)
    assert converted.tzinfo == UTC and converted.hour == 10


# ---------------------------------------------------------------- properties

NAMES = st.from_regex(r"\A[A-Za-z0-9_][A-Za-z0-9_.\-]{0,40}\Z")


@given(name=NAMES, version=st.integers(min_value=0, max_value=10**12))
def test_name_at_version_property(name: str, version: int) -> None:
    ref = parse_ref(f"{name}@{version}")
    assert ref.name == name
    assert ref.version == version
    assert ref.timestamp is None and ref.alias is None
    assert str(ref) == f"{name}@{version}"
    assert check_name(name) == name


@given(name=NAMES, version=st.integers(min_value=0, max_value=10**12))
def test_model_slash_version_property(name: str, version: int) -> None:
    ref = parse_ref(f"model:{name}/{version}")
    assert (ref.kind, ref.name, ref.version) == ("model", name, version)
    assert str(ref) == f"model:{name}/{version}"


@given(moment=st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)))
def test_timestamp_round_trip_property(moment: datetime) -> None:
    ref = Ref(name="t", timestamp=moment)
    assert parse_ref(str(ref)) == ref
