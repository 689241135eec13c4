"""contracts.py: loading, conforming (column-level) and row-level checks with reasons and examples."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest

from keel.data.contracts import MAX_EXAMPLES, ColumnSpec, Contract, check_rows, conform, load_contract
from keel.errors import ContractError, ValidationFailed

YAML = """
table: listings
target: price
key: [listing_id]
time_column: listed_at
columns:
  listing_id: {dtype: int64, nullable: false}
  price: {dtype: float64, min: 0, max: 10000}
  room_type: {dtype: string, allowed: [entire, private, shared]}
  listed_at: {dtype: timestamp}
"""


def contract(columns: dict, **top: object) -> Contract:
    return Contract.from_dict({"columns": columns, **top})


# ---------------------------------------------------------------- loading


def test_yaml_loading() -> None:
    c = Contract.from_yaml(YAML)
    assert c.table == "listings"
    assert c.target == "price"
    assert c.key == ["listing_id"]
    assert c.time_column == "listed_at"
    assert list(c.columns) == ["listing_id", "price", "room_type", "listed_at"]
    assert c.columns["listing_id"] == ColumnSpec(dtype="int64", nullable=False)
    assert c.columns["price"].min == 0 and c.columns["price"].max == 10000
    assert c.columns["room_type"].allowed == ["entire", "private", "shared"]


def test_dict_loading_equals_yaml_loading() -> None:
    as_dict = {
        "table": "listings", "target": "price", "key": ["listing_id"], "time_column": "listed_at",
        "columns": {
            "listing_id": {"dtype": "int64", "nullable": False},
            "price": {"dtype": "float64", "min": 0, "max": 10000},
            "room_type": {"dtype": "string", "allowed": ["entire", "private", "shared"]},
            "listed_at": {"dtype": "timestamp"},
        },
    }
    assert Contract.from_dict(as_dict) == Contract.from_yaml(YAML)
    assert load_contract(as_dict) == Contract.from_yaml(YAML)


def test_load_contract_from_file_object_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "contract.yaml"
    path.write_text(YAML, encoding="utf-8")
    c = load_contract(path)
    assert c == Contract.from_yaml(YAML)
    assert load_contract(str(path)) == c
    assert load_contract(c) is c
    with pytest.raises(ContractError, match="does not exist"):
        load_contract(tmp_path / "nope.yaml")


def test_yaml_round_trip_and_spec_hash() -> None:
    c = Contract.from_yaml(YAML)
    again = Contract.from_yaml(c.to_yaml())
    assert again == c
    assert again.spec_hash() == c.spec_hash()
    changed = Contract.from_yaml(YAML.replace("max: 10000", "max: 9999"))
    assert changed.spec_hash() != c.spec_hash()


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("columns:\n  a: {dtype: int128}\n", encoding="utf-8")
    with pytest.raises(ContractError, match=r"bad\.yaml: columns\.a\.dtype"):
        load_contract(path)


# ---------------------------------------------------------------- bad contracts


@pytest.mark.parametrize("text", ["columns: [1,", "columns:\n\ta: 1\n", "columns:\n  a: {dtype: int64\n  b: 1\n"])
def test_invalid_yaml_is_a_contract_error(text: str) -> None:
    with pytest.raises(ContractError, match="not valid YAML"):
        Contract.from_yaml(text, source="my.yaml")


def test_invalid_yaml_message_says_where() -> None:
    with pytest.raises(ContractError, match="line 3"):
        Contract.from_yaml("columns:\n  a: {dtype: int64\n  b: 1\n", source="my.yaml")


@pytest.mark.parametrize("doc", [None, [], ["a"], "columns", 3])
def test_contract_must_be_a_mapping(doc: object) -> None:
    with pytest.raises(ContractError, match="must be a mapping"):
        Contract.from_dict(doc, source="c.yaml")


@pytest.mark.parametrize("text", ["- a\n- b\n", "just text\n", ""])
def test_yaml_that_is_not_a_mapping(text: str) -> None:
    with pytest.raises(ContractError, match="must be a mapping"):
        Contract.from_yaml(text)


@pytest.mark.parametrize(
    ("doc", "location"),
    [
        ({"columns": {"a": {}}, "colums": {}}, "colums"),
        ({"columns": {"a": {"dtype": "int64", "nulable": False}}}, "columns.a.nulable"),
        ({"columns": {"a": {"dtype": "int128"}}}, "columns.a.dtype"),
        ({"columns": {"a": {"dtype": "float64", "min": "low"}}}, "columns.a.min"),
        ({"table": "t"}, "columns"),
        ({"columns": {"a": {"dtype": "string", "min": 0}}}, "columns.a"),
        ({"columns": {"a": {"dtype": "timestamp", "max": 3}}}, "columns.a"),
    ],
)
def test_bad_contracts_name_the_location(doc: dict, location: str) -> None:
    with pytest.raises(ContractError) as info:
        Contract.from_dict(doc, source="c.yaml")
    assert f"c.yaml: {location}" in str(info.value)


def test_unknown_dtype_lists_the_known_ones() -> None:
    with pytest.raises(ContractError, match="float64"):
        contract({"a": {"dtype": "double"}})


def test_min_on_string_explains_numeric_only() -> None:
    with pytest.raises(ContractError, match="numeric"):
        contract({"a": {"dtype": "string", "min": 0}})


@pytest.mark.parametrize(
    ("top", "what"),
    [({"key": ["b"]}, "key"), ({"key": ["a", "b"]}, "key"), ({"target": "b"}, "target"),
     ({"time_column": "b"}, "time_column")],
)
def test_key_target_time_must_be_declared(top: dict, what: str) -> None:
    with pytest.raises(ContractError) as info:
        contract({"a": {"dtype": "int64"}}, **top)
    assert what in str(info.value) and "b" in str(info.value) and "not declared" in str(info.value)


# ---------------------------------------------------------------- conform


def test_conform_casts_int_to_float() -> None:
    out = conform(pa.table({"a": pa.array([1, 2], pa.int64())}), contract({"a": {"dtype": "float64"}}))
    assert out.schema.field("a").type == pa.float64()
    assert out["a"].to_pylist() == [1.0, 2.0]


def test_conform_parses_string_timestamps_to_utc() -> None:
    table = pa.table({"ts": ["2024-05-01T12:00:00+02:00", "2024-05-01T00:00:00+00:00"]})
    out = conform(table, contract({"ts": {"dtype": "timestamp"}}))
    assert out.schema.field("ts").type == pa.timestamp("us", tz="UTC")
    assert out["ts"].to_pylist() == [datetime(2024, 5, 1, 10, tzinfo=UTC), datetime(2024, 5, 1, tzinfo=UTC)]


def test_conform_naive_and_date_strings_become_utc() -> None:
    ts_contract = contract({"ts": {"dtype": "timestamp"}})
    out = conform(pa.table({"ts": ["2024-05-01T12:00:00", "2024-05-02T00:30:00"]}), ts_contract)
    assert out["ts"].to_pylist() == [datetime(2024, 5, 1, 12, tzinfo=UTC), datetime(2024, 5, 2, 0, 30, tzinfo=UTC)]
    out = conform(pa.table({"ts": ["2024-05-01", "2024-05-02"]}), ts_contract)
    assert out["ts"].to_pylist() == [datetime(2024, 5, 1, tzinfo=UTC), datetime(2024, 5, 2, tzinfo=UTC)]


def test_conform_keeps_untyped_and_extra_columns() -> None:
    table = pa.table({"a": ["x"], "b": [1], "extra": [True]})
    out = conform(table, contract({"a": {}, "b": {"dtype": "int64"}}))
    assert out.equals(table)


def test_conform_rejects_missing_column_naming_it() -> None:
    with pytest.raises(ValidationFailed) as info:
        conform(pa.table({"a": [1]}), contract({"a": {"dtype": "int64"}, "price": {"dtype": "float64"}}))
    report = info.value.report
    assert [(f.check, f.column) for f in report.failures] == [("missing_column", "price")]
    assert report.failed_rows == report.rows == 1
    assert "price" in str(info.value)
    assert info.value.details["failures"][0]["column"] == "price"


def test_conform_rejects_uncastable_column_naming_it() -> None:
    with pytest.raises(ValidationFailed) as info:
        conform(pa.table({"a": ["1", "x"], "b": [1, 2]}), contract({"a": {"dtype": "int64"}, "b": {"dtype": "int64"}}))
    failures = info.value.report.failures
    assert [(f.check, f.column) for f in failures] == [("dtype", "a")]
    assert failures[0].examples[0]["expected"] == "int64"
    assert "a" in str(info.value)


def test_conform_refuses_lossy_float_to_int() -> None:
    with pytest.raises(ValidationFailed) as info:
        conform(pa.table({"a": [1.5]}), contract({"a": {"dtype": "int64"}}))
    assert info.value.report.failures[0].column == "a"


def test_conform_rejects_unparseable_timestamps() -> None:
    with pytest.raises(ValidationFailed) as info:
        conform(pa.table({"ts": ["yesterday"]}), contract({"ts": {"dtype": "timestamp"}}))
    assert info.value.report.failures[0].column == "ts"


def test_conform_reports_every_problem_at_once() -> None:
    c = contract({"a": {"dtype": "int64"}, "b": {"dtype": "int64"}, "gone": {}})
    with pytest.raises(ValidationFailed) as info:
        conform(pa.table({"a": ["x"], "b": ["y"]}), c)
    assert {(f.check, f.column) for f in info.value.report.failures} == {
        ("missing_column", "gone"), ("dtype", "a"), ("dtype", "b")}


def test_conform_unexpected_columns_when_extra_not_allowed() -> None:
    c = contract({"a": {}}, allow_extra_columns=False)
    with pytest.raises(ValidationFailed) as info:
        conform(pa.table({"a": [1], "b": [2], "c": [3]}), c)
    assert [(f.check, f.column) for f in info.value.report.failures] == [("unexpected_column", "b, c")]


# ---------------------------------------------------------------- check_rows


def checks(result) -> dict[tuple[str, str | None], int]:
    return {(f.check, f.column): f.failed for f in result.report.failures}


def test_clean_rows_pass() -> None:
    c = contract({"a": {"dtype": "int64", "nullable": False, "min": 0, "max": 9, "unique": True}})
    result = check_rows(pa.table({"a": [0, 5, 9]}), c)
    assert result.report.passed
    assert result.report.failed_rows == 0
    assert not result.bad.any()
    assert list(result.reasons) == []


def test_not_null() -> None:
    result = check_rows(pa.table({"a": [1, None, 3, None]}), contract({"a": {"nullable": False}}))
    assert result.bad.tolist() == [False, True, False, True]
    assert checks(result) == {("not_null", "a"): 2}
    assert list(result.reasons) == ["not_null(a)", "not_null(a)"]


def test_nan_counts_as_null_for_not_null() -> None:
    c = contract({"a": {"dtype": "float64", "nullable": False}})
    result = check_rows(pa.table({"a": [1.0, math.nan, None]}), c)
    assert result.bad.tolist() == [False, True, True]
    assert checks(result) == {("not_null", "a"): 2}


def test_nullable_column_allows_nulls() -> None:
    result = check_rows(pa.table({"a": [1, None]}), contract({"a": {"nullable": True}}))
    assert result.report.passed


def test_min_and_max() -> None:
    c = contract({"p": {"dtype": "float64", "min": 0, "max": 100}})
    result = check_rows(pa.table({"p": [-1.0, 0.0, 50.0, 100.0, 100.5, None]}), c)
    assert result.bad.tolist() == [True, False, False, False, True, False]  # bounds inclusive; null not a range fail
    assert checks(result) == {("min", "p"): 1, ("max", "p"): 1}
    assert list(result.reasons) == ["min(p)", "max(p)"]


def test_allowed_values_and_nulls_are_not_disallowed() -> None:
    c = contract({"room": {"dtype": "string", "allowed": ["entire", "private"]}})
    result = check_rows(pa.table({"room": ["entire", "hotel", None, "private", "castle"]}), c)
    assert result.bad.tolist() == [False, True, False, False, True]
    assert checks(result) == {("allowed", "room"): 2}


def test_allowed_integers() -> None:
    c = contract({"n": {"dtype": "int64", "allowed": [1, 2, 3]}})
    result = check_rows(pa.table({"n": pa.array([1, 4, None, 3], pa.int64())}), c)
    assert result.bad.tolist() == [False, True, False, False]


def test_unique_column_flags_later_repeats() -> None:
    result = check_rows(pa.table({"id": [1, 2, 1, 3, 2, 1]}), contract({"id": {"unique": True}}))
    assert result.bad.tolist() == [False, False, True, False, True, True]
    assert checks(result) == {("unique", "id"): 3}


def test_multi_column_key() -> None:
    c = contract({"host": {}, "day": {}, "v": {}}, key=["host", "day"])
    table = pa.table({"host": ["a", "a", "b", "a", "b"], "day": [1, 2, 1, 1, 2], "v": [0, 1, 2, 3, 4]})
    result = check_rows(table, c)
    assert result.bad.tolist() == [False, False, False, True, False]
    assert checks(result) == {("unique_key", "host,day"): 1}
    assert list(result.reasons) == ["unique_key(host,day)"]


def test_single_key_column_marked_unique_is_checked_once() -> None:
    c = contract({"id": {"unique": True}}, key=["id"])
    result = check_rows(pa.table({"id": [1, 1]}), c)
    assert checks(result) == {("unique_key", "id"): 1}
    assert list(result.reasons) == ["unique_key(id)"]


def test_duplicates_against_existing_keys() -> None:
    c = contract({"host": {}, "day": {}}, key=["host", "day"])
    existing = pa.table({"host": ["a", "b"], "day": [1, 1], "other": [0, 0]})
    batch = pa.table({"host": ["a", "a", "b", "c"], "day": [1, 2, 1, 1]})
    result = check_rows(batch, c, existing_keys=existing)
    assert result.bad.tolist() == [True, False, True, False]
    assert checks(result) == {("unique_key", "host,day"): 2}


def test_unique_column_against_existing_keys() -> None:
    result = check_rows(pa.table({"id": [5, 6]}), contract({"id": {"unique": True}}),
                        existing_keys=pa.table({"id": [6, 7]}))
    assert result.bad.tolist() == [False, True]


def test_empty_existing_keys_change_nothing() -> None:
    c = contract({"id": {}}, key=["id"])
    result = check_rows(pa.table({"id": [1, 2]}), c, existing_keys=pa.table({"id": pa.array([], pa.int64())}))
    assert result.report.passed


def test_reasons_per_bad_row_are_joined() -> None:
    c = contract({"a": {"dtype": "float64", "nullable": False}, "b": {"dtype": "float64", "min": 0, "max": 1}})
    table = pa.table({"a": [None, 1.0, None, 2.0], "b": [-1.0, 0.5, 0.5, 2.0]})
    result = check_rows(table, c)
    assert result.bad.tolist() == [True, False, True, True]
    assert list(result.reasons) == ["not_null(a); min(b)", "not_null(a)", "max(b)"]
    assert result.report.failed_rows == 3  # rows, not check failures
    assert result.report.rows == 4
    assert checks(result) == {("not_null", "a"): 2, ("min", "b"): 1, ("max", "b"): 1}


def test_report_keeps_at_most_five_example_rows() -> None:
    values = [-float(i) for i in range(1, 9)] + [1.0]
    result = check_rows(pa.table({"p": values, "id": list(range(9))}), contract({"p": {"min": 0}, "id": {}}))
    (failure,) = result.report.failures
    assert failure.failed == 8
    assert MAX_EXAMPLES == 5
    assert failure.examples == [{"p": -float(i), "id": i - 1} for i in range(1, 6)]


def test_examples_are_json_friendly() -> None:
    c = contract({"ts": {"dtype": "timestamp", "nullable": False}, "v": {}})
    table = conform(pa.table({"ts": [None, "2024-05-01T00:00:00"], "v": [1, 2]}), c)
    (failure,) = check_rows(table, c).report.failures
    assert failure.examples == [{"ts": None, "v": 1}]
    assert check_rows(table, c).report.to_dict()["failures"][0]["examples"] == [{"ts": None, "v": 1}]


def test_summary_names_the_checks() -> None:
    result = check_rows(pa.table({"a": [None, None, 1]}), contract({"a": {"nullable": False}}))
    assert result.report.summary() == "2 of 3 rows fail the contract (not_null on a: 2 row(s))"


def test_allowed_values_that_do_not_fit_the_dtype_are_a_contract_error() -> None:
    c = contract({"a": {"dtype": "int64", "allowed": ["x"]}})
    with pytest.raises(ContractError, match="a"):
        check_rows(pa.table({"a": [1, 2]}), c)


def test_range_on_untyped_string_column_is_a_contract_error() -> None:
    with pytest.raises(ContractError, match="a"):
        check_rows(pa.table({"a": ["x", "y"]}), contract({"a": {"min": 0}}))
