"""tracking/search.py: the run-filter language parses, says where it is wrong, and selects the right runs in order."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.dialects import sqlite

from keel.errors import InvalidInput, UserError
from keel.storage.db import Database
from keel.storage.schema import run_latest_metrics, run_params, run_tags, runs
from keel.tracking.search import (
    And,
    Condition,
    Or,
    SortKey,
    parse_filter,
    parse_sort,
    search_query,
    search_runs,
    sqlite_prints_floats_exactly,
    stored_utc,
)

T0 = datetime(2024, 5, 1, tzinfo=UTC)

# ---------------------------------------------------------------- parsing: every operator and literal


@pytest.mark.parametrize("op", ["=", "!=", "<", "<=", ">", ">="])
def test_every_comparison_on_metrics(op: str) -> None:
    assert parse_filter(f"metrics.rmse {op} 3") == Condition("metrics", "rmse", op, 3)


@pytest.mark.parametrize(("written", "op"), [("==", "="), ("<>", "!=")])
def test_operator_aliases(written: str, op: str) -> None:
    assert parse_filter(f"metrics.rmse {written} 3") == Condition("metrics", "rmse", op, 3)


def test_no_spaces_needed() -> None:
    assert parse_filter("metrics.rmse<=-3.5") == Condition("metrics", "rmse", "<=", -3.5)


@pytest.mark.parametrize(
    ("literal", "value"),
    [("5", 5), ("-5", -5), ("+5", 5), ("2.5", 2.5), (".5", 0.5), ("5.", 5.0), ("1e-3", 0.001), ("-2.5E+2", -250.0),
     ("123456789012345678901234", 1.2345678901234568e23)],
)
def test_numbers(literal: str, value: float) -> None:
    parsed = parse_filter(f"metrics.m > {literal}")
    assert isinstance(parsed, Condition)
    assert parsed.value == value
    assert type(parsed.value) is type(value)


def test_like_ilike_and_in() -> None:
    assert parse_filter("tags.team LIKE 'pric%'") == Condition("tags", "team", "like", "pric%")
    assert parse_filter("params.model ilike \"GB%\"") == Condition("params", "model", "ilike", "GB%")
    assert parse_filter("params.model in ('gbm', \"linear\", 3)") == Condition(
        "params", "model", "in", ("gbm", "linear", 3)
    )
    assert parse_filter("metrics.m IN (1, 2.5)") == Condition("metrics", "m", "in", (1, 2.5))


def test_string_quotes_are_doubled_to_include_them() -> None:
    assert parse_filter("tags.note = 'it''s'") == Condition("tags", "note", "=", "it's")
    assert parse_filter('tags.note = "say ""hi"""') == Condition("tags", "note", "=", 'say "hi"')
    assert parse_filter("tags.note = 'a \\_ b'").value == "a \\_ b"  # backslashes are kept for like


def test_quoted_and_dotted_keys() -> None:
    assert parse_filter('metrics."val.rmse" < 1') == Condition("metrics", "val.rmse", "<", 1)
    assert parse_filter("metrics.`val rmse` < 1") == Condition("metrics", "val rmse", "<", 1)
    assert parse_filter("metrics.`a``b` < 1") == Condition("metrics", "a`b", "<", 1)
    assert parse_filter("metrics.val.rmse < 1") == Condition("metrics", "val.rmse", "<", 1)
    assert parse_filter("metrics.layer.0 < 1") == Condition("metrics", "layer.0", "<", 1)
    assert parse_filter("params.in = 'x'") == Condition("params", "in", "=", "x")  # keywords are fine as keys


def test_entities_and_their_aliases() -> None:
    assert parse_filter("metric.a = 1").entity == "metrics"
    assert parse_filter("PARAM.a = 1").entity == "params"
    assert parse_filter("tag.a = 'x'").entity == "tags"
    assert parse_filter("run.status = 'failed'") == Condition("attributes", "status", "=", "failed")
    assert parse_filter("attributes.start_time > '2024-05-01'") == Condition("attributes", "started_at", ">", T0)


def test_timestamps_are_utc() -> None:
    plus_two = parse_filter("attributes.ended_at <= '2024-05-01T02:00+02:00'")
    assert plus_two == Condition("attributes", "ended_at", "<=", T0)
    assert plus_two.value.tzinfo == UTC  # type: ignore[union-attr]
    assert parse_filter("run.started_at = '2024-05-01T00:00Z'").value == T0


def test_and_is_case_insensitive_and_flattened() -> None:
    a, b, c = (Condition("metrics", k, "<", 1) for k in "abc")
    assert parse_filter("metrics.a < 1 and metrics.b < 1 AND metrics.c < 1") == And((a, b, c))
    assert parse_filter("metrics.a < 1 And (metrics.b < 1 aNd metrics.c < 1)") == And((a, b, c))


def test_or_binds_looser_than_and() -> None:
    a, b, c = (Condition("metrics", k, "<", 1) for k in "abc")
    assert parse_filter("metrics.a < 1 or metrics.b < 1 and metrics.c < 1") == Or((a, And((b, c))))
    assert parse_filter("(metrics.a < 1 OR metrics.b < 1) and metrics.c < 1") == And((Or((a, b)), c))
    assert parse_filter("((metrics.a < 1))") == a


def test_printing_round_trips() -> None:
    for text in [
        "metrics.a < 1 or metrics.b < 1 and metrics.c < 1",
        "(metrics.a < 1 or metrics.b < 1) and tags.t = 'x'",
        "metrics.`val rmse` in (1, 2.5) and attributes.started_at >= '2024-05-01T00:00:00+00:00'",
    ]:
        tree = parse_filter(text)
        assert parse_filter(str(tree)) == tree
    assert str(parse_filter("METRIC.a<1 AND run.status='failed'")) == "metrics.a < 1 and attributes.status = 'failed'"


keys = st.text(min_size=1, max_size=12).filter(lambda s: "\x00" not in s)
text_values = st.text(max_size=8)
numbers = st.one_of(st.integers(-(10**17), 10**17), st.floats(allow_nan=False, allow_infinity=False))


@given(
    entity=st.sampled_from(["metrics", "params", "tags"]),
    key=keys,
    op=st.sampled_from(["=", "!=", "<", "<=", ">", ">=", "in", "like", "ilike"]),
    data=st.data(),
)
def test_any_condition_prints_back_to_itself(entity: str, key: str, op: str, data: st.DataObject) -> None:
    if op in ("like", "ilike"):
        if entity == "metrics":
            return
        value: Any = data.draw(text_values.filter(lambda s: not s.endswith("\\")))
    elif op == "in":
        value = tuple(data.draw(st.lists(numbers if entity == "metrics" else st.one_of(numbers, text_values),
                                         min_size=1, max_size=3)))
    else:
        textual = entity != "metrics" and op in ("=", "!=")
        value = data.draw(st.one_of(numbers, text_values) if textual else numbers)
    condition = Condition(entity, key, op, value)
    assert parse_filter(str(condition)) == condition


# ---------------------------------------------------------------- parsing errors name the problem and position


def error(text: str) -> InvalidInput:
    with pytest.raises(InvalidInput) as info:
        parse_filter(text)
    return info.value


@pytest.mark.parametrize(
    ("text", "words", "position"),
    [
        ("foo.bar = 1", ["unknown entity 'foo'", "metrics, params, tags or attributes"], 1),
        ("metrics.rmse <", ["expected a value", "got end of input"], 15),
        ("metrics.rmse < and metrics.a > 1", ["expected a value", "got 'and'"], 16),
        ("params.a = 'abc", ["unterminated string"], 12),
        ('params."abc = 1', ["unterminated string"], 8),
        ("metrics.`abc < 1", ["unterminated quoted key"], 9),
        ("metrics.a < 3 foo", ["expected 'and', 'or' or the end of the filter", "got 'foo'"], 15),
        ("metrics.a < 3)", ["expected 'and', 'or' or the end", "got ')'"], 14),
        ("metrics.a < 3 and", ["expected a condition", "end of input"], 18),
        ("metrics.a ~ 3", ["unexpected character '~'"], 11),
        ("metrics.a is 3", ["expected an operator", "got 'is'"], 11),
        ("metrics.a 3", ["expected an operator", "got '3'"], 11),
        ("metrics.a like 'x%'", ["does not support 'like'"], 11),
        ("run.status < 'x'", ["does not support '<'"], 12),
        ("run.started_at like '2024%'", ["does not support 'like'"], 16),
        ("metrics.a < 'x'", ["compares numbers", "'x'"], 13),
        ("params.a >= 'x'", ["compares numbers"], 13),
        ("tags.a like 3", ["expected a quoted string", "got '3'"], 13),
        ("metrics.a = `x`", ["backticks quote keys"], 13),
        ("metrics.a = abc", ["expected a value", "got 'abc'"], 13),
        ("metrics.a = 1.2.3", ["expected a value"], 13),
        ("metrics < 3", ["expected '.' and a key", "got '<'"], 9),
        ("metrics. < 3", ["expected a key", "got '<'"], 10),
        ('metrics."" < 3', ["empty key"], 9),
        ("3 < metrics.a", ["expected metrics.KEY", "got '3'"], 1),
        ("run.colour = 'red'", ["unknown attribute 'colour'", "status"], 5),
        ("run.status = 'done'", ["unknown status 'done'", "finished"], 14),
        ("run.status in ('failed', 'done')", ["unknown status 'done'"], 26),
        ("run.started_at > 'yesterday'", ["malformed timestamp", "ISO 8601"], 18),
        ("tags.a like 'x\\'", ["lone backslash"], 13),
        ("(metrics.a < 1", ["expected ')'", "end of input"], 15),
        ("metrics.a in 1", ["expected '('"], 14),
        ("metrics.a in ()", ["expected a value", "got ')'"], 15),
        ("metrics.a in (1, 2", ["expected ',' or ')'"], 19),
        ("", ["expected a condition", "end of input"], 1),
        ("   ", ["expected a condition"], 4),
    ],
)
def test_errors_say_what_and_where(text: str, words: list[str], position: int) -> None:
    err = error(text)
    assert isinstance(err, UserError) and err.exit_code == 2 and err.http_status == 400
    assert err.message.startswith("invalid filter: ")
    for word in words:
        assert word in err.message
    assert f"position {position}" in err.message
    assert err.details["position"] == position
    assert err.details["filter"] == text


def test_error_points_at_the_problem() -> None:
    lines = error("metrics.a < 3 foo").message.splitlines()
    assert lines[1:] == ["  metrics.a < 3 foo", "  " + " " * 14 + "^"]


def test_a_filter_is_text() -> None:
    with pytest.raises(InvalidInput, match="a filter is text"):
        parse_filter(3)  # type: ignore[arg-type]


# ---------------------------------------------------------------- sort keys


def test_parse_sort() -> None:
    assert parse_sort("-metrics.rmse,params.lr") == [SortKey("metrics", "rmse", True), SortKey("params", "lr")]
    assert parse_sort(["-metrics.rmse", "params.lr, +tags.t"]) == [
        SortKey("metrics", "rmse", True), SortKey("params", "lr"), SortKey("tags", "t")
    ]
    assert parse_sort("metrics.a DESC, metrics.b asc") == [SortKey("metrics", "a", True), SortKey("metrics", "b")]
    assert parse_sort('-metrics."val.rmse"') == [SortKey("metrics", "val.rmse", True)]
    assert parse_sort("run.start_time") == [SortKey("attributes", "started_at")]
    assert parse_sort("") == [] and parse_sort([]) == [] and parse_sort(["  "]) == []
    assert str(SortKey("metrics", "val rmse", True)) == "-metrics.`val rmse`"
    assert SortKey("metrics", "rmse", True).label == "metrics.rmse"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("-", ["expected metrics.KEY", "end of input"]),
        ("metrics.a,,", ["expected metrics.KEY", "got ','"]),
        ("metrics.a metrics.b", ["expected ','", "got 'metrics'"]),
        ("-metrics.a desc", ["either a '-' prefix or 'desc'"]),
        ("bogus.a", ["unknown entity 'bogus'"]),
        ("run.colour", ["unknown attribute 'colour'"]),
        ("metrics.a, -metrics.a", ["metrics.a given more than once"]),
    ],
)
def test_sort_errors(text: str, words: list[str]) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_sort(text)
    assert info.value.message.startswith("invalid sort: ")
    for word in words:
        assert word in info.value.message


def test_search_query_arguments_are_checked() -> None:
    with pytest.raises(InvalidInput, match="limit"):
        search_query(None, [], limit=0)
    with pytest.raises(InvalidInput, match="unknown run status 'done'"):
        search_query(None, [], status="done")
    assert isinstance(search_query("metrics.a < 1", "-metrics.a"), sa.Select)  # text accepted too


# ---------------------------------------------------------------- execution against a migrated database


def add_run(conn: sa.Connection, run_id: str, *, minute: int, experiment: str = "price", status: str = "finished",
            name: str | None = None, metrics: dict[str, float | None] | None = None,
            params: dict[str, str] | None = None, tags: dict[str, str] | None = None) -> None:
    started = T0 + timedelta(minutes=minute)
    conn.execute(runs.insert().values(
        id=run_id, experiment=experiment, name=name, status=status, created_by="ana", started_at=started,
        ended_at=None if status == "running" else started + timedelta(seconds=30), environment={},
    ))
    if metrics:
        conn.execute(run_latest_metrics.insert(),
                     [{"run_id": run_id, "key": k, "seq": 1, "step": None, "value": v} for k, v in metrics.items()])
    for table, values in ((run_params, params), (run_tags, tags)):
        if values:
            conn.execute(table.insert(), [{"run_id": run_id, "key": k, "value": v} for k, v in values.items()])


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """Five runs; r5 recorded NaN for rmse (a NULL), r4 has no rmse at all."""
    url = f"sqlite:///{tmp_path}/k.db" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    database = Database(url)
    database.migrate()
    with database.transaction() as conn:
        add_run(conn, "r1", minute=1, metrics={"rmse": 2.5, "mae": 1.0},
                params={"max_depth": "5", "lr": "0.1", "model": "gbm"}, tags={"team": "Pricing"})
        add_run(conn, "r2", minute=2, metrics={"rmse": 3.5},
                params={"max_depth": "10", "lr": "0.01", "model": "linear"}, tags={"team": "pricing"})
        add_run(conn, "r3", minute=3, status="failed", metrics={"rmse": 1.0},
                params={"max_depth": "5", "lr": "abc"}, tags={"team": "risk", "val.split": "a_b%"})
        add_run(conn, "r4", minute=4, experiment="churn", metrics={"acc": 0.9}, params={"max_depth": "5.0"})
        add_run(conn, "r5", minute=5, status="running", name="best_run", metrics={"rmse": None},
                tags={"team": "Pricing", "note": "it's [x]*?"})
    yield database
    database.dispose()


def ids(db: Database, filter: str | None = None, sort: str = "", **kwargs: Any) -> list[str]:
    """The ids search_query selects, checked against search_runs (the listing's statement): same runs, same order."""
    query = search_query(None if filter is None else parse_filter(filter), parse_sort(sort), **kwargs)
    with db.read() as conn:
        found = list(conn.execute(query).scalars())
        listed = [row.id for row in conn.execute(search_runs(filter, sort, **kwargs))]
    assert listed == found
    return found


@pytest.mark.parametrize(
    ("filter", "expected"),
    [
        (None, ["r5", "r4", "r3", "r2", "r1"]),  # newest first by default
        ("metrics.rmse < 3", ["r3", "r1"]),
        ("metrics.rmse <= 2.5", ["r3", "r1"]),
        ("metrics.rmse >= 2.5", ["r2", "r1"]),
        ("metrics.rmse > 1", ["r2", "r1"]),
        ("metrics.rmse = 3.5", ["r2"]),
        ("metrics.rmse != 2.5", ["r3", "r2"]),  # missing (r4) and NaN (r5) never match
        ("metrics.rmse in (1, 3.5)", ["r3", "r2"]),
        ("metrics.acc > 0.5", ["r4"]),
        ("metrics.nothing < 1e9", []),
    ],
)
def test_metric_thresholds(db: Database, filter: str | None, expected: list[str]) -> None:
    assert ids(db, filter) == expected


@pytest.mark.parametrize(
    ("filter", "expected"),
    [
        ("params.max_depth = 5", ["r3", "r1"]),  # text: "5.0" is not "5"
        ("params.max_depth = '5.0'", ["r4"]),
        ("params.max_depth != 5", ["r4", "r2"]),  # r5 has no max_depth
        ("params.model in ('gbm', 'linear', 'svm')", ["r2", "r1"]),
        ("params.model like 'l%'", ["r2"]),
        ("params.max_depth > 5", ["r2"]),  # numeric, not text ("10" < "5" as text)
        ("params.max_depth >= 5", ["r4", "r3", "r2", "r1"]),
        ("params.max_depth < 10", ["r4", "r3", "r1"]),
        ("params.max_depth <= 4.99", []),
        ("params.lr < 0.05", ["r2"]),  # "abc" never matches a numeric comparison
        ("params.lr > -1e9", ["r2", "r1"]),
        ("params.lr = 'abc'", ["r3"]),
    ],
)
def test_params(db: Database, filter: str, expected: list[str]) -> None:
    assert ids(db, filter) == expected


@pytest.mark.parametrize(
    ("filter", "expected"),
    [
        ("tags.team = 'Pricing'", ["r5", "r1"]),
        ("tags.team != 'Pricing'", ["r3", "r2"]),
        ("tags.team like 'Pric%'", ["r5", "r1"]),  # like is case-sensitive on every backend
        ("tags.team like 'pric%'", ["r2"]),
        ("tags.team ilike 'PRIC%'", ["r5", "r2", "r1"]),
        ("tags.team like '_isk'", ["r3"]),
        ("tags.team like 'ris'", []),
        ('tags."val.split" = \'a_b%\'', ["r3"]),
        ("tags.`val.split` like 'a\\_b\\%'", ["r3"]),  # escaped: literal _ and %
        ("tags.`val.split` like 'a\\_c%'", []),
        ("tags.note like '%[x]*?'", ["r5"]),  # glob characters are literal in like
        ("tags.note like 'it''s%'", ["r5"]),
        ("tags.note ilike 'IT''S [X]%'", ["r5"]),
        ("tags.team in ('risk', 'pricing')", ["r3", "r2"]),
    ],
)
def test_tags(db: Database, filter: str, expected: list[str]) -> None:
    assert ids(db, filter) == expected


@pytest.mark.parametrize(
    ("filter", "expected"),
    [
        ("attributes.status = 'failed'", ["r3"]),
        ("run.status != 'finished'", ["r5", "r3"]),
        ("run.status in ('running', 'failed')", ["r5", "r3"]),
        ("attributes.experiment = 'churn'", ["r4"]),
        ("attributes.name = 'best_run'", ["r5"]),
        ("attributes.name ilike 'BEST%'", ["r5"]),
        ("attributes.id in ('r1', 'r4', 'nope')", ["r4", "r1"]),
        ("attributes.created_by = 'ana'", ["r5", "r4", "r3", "r2", "r1"]),
        ("attributes.started_at > '2024-05-01T00:03Z'", ["r5", "r4"]),
        ("attributes.started_at >= '2024-05-01T02:03+02:00'", ["r5", "r4", "r3"]),
        ("attributes.started_at = '2024-05-01 00:02'", ["r2"]),  # no zone means UTC
        ("attributes.ended_at < '2024-05-01T00:02:45Z'", ["r2", "r1"]),  # a running run has no end
    ],
)
def test_attributes(db: Database, filter: str, expected: list[str]) -> None:
    assert ids(db, filter) == expected


@pytest.mark.parametrize(
    ("filter", "expected"),
    [
        ("metrics.rmse < 3 and params.max_depth = 5", ["r3", "r1"]),
        ("metrics.rmse < 3 and params.max_depth = 5 and run.status = 'finished'", ["r1"]),
        ("metrics.rmse < 3 AND tags.team = 'Pricing'", ["r1"]),
        ("metrics.rmse > 3 or tags.team = 'risk'", ["r3", "r2"]),
        ("metrics.acc > 0 or metrics.rmse < 2 and params.lr = 'abc'", ["r4", "r3"]),
        ("(metrics.acc > 0 or metrics.rmse < 2) and params.lr = 'abc'", ["r3"]),
        ("metrics.rmse < 3 and metrics.mae < 2", ["r1"]),
    ],
)
def test_combined_conditions(db: Database, filter: str, expected: list[str]) -> None:
    assert ids(db, filter) == expected


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("metrics.rmse", ["r3", "r1", "r2", "r5", "r4"]),  # NaN (r5) and missing (r4) last, newest first
        ("-metrics.rmse", ["r2", "r1", "r3", "r5", "r4"]),
        ("metrics.rmse desc", ["r2", "r1", "r3", "r5", "r4"]),
        ("params.max_depth", ["r3", "r1", "r4", "r2", "r5"]),  # 5, 5 (tie: newest first), 5.0, 10; missing
        ("-params.max_depth", ["r2", "r4", "r3", "r1", "r5"]),
        ("params.lr", ["r2", "r1", "r3", "r5", "r4"]),  # numbers, then text, then missing
        ("-params.lr", ["r1", "r2", "r3", "r5", "r4"]),
        ("params.model", ["r1", "r2", "r5", "r4", "r3"]),  # text; no model: last, newest first
        ("-params.model", ["r2", "r1", "r5", "r4", "r3"]),
        ("-attributes.name", ["r5", "r4", "r3", "r2", "r1"]),  # the one name first, no name last
        ("attributes.name", ["r5", "r4", "r3", "r2", "r1"]),
        ("run.started_at", ["r1", "r2", "r3", "r4", "r5"]),
        ("params.max_depth, -metrics.rmse", ["r1", "r3", "r4", "r2", "r5"]),
        ("run.status, -metrics.rmse", ["r3", "r2", "r1", "r4", "r5"]),
    ],
)
def test_sorting(db: Database, sort: str, expected: list[str]) -> None:
    assert ids(db, None, sort) == expected


def test_filter_with_sort_and_sort_columns(db: Database) -> None:
    sort = parse_sort(["-metrics.rmse", "params.lr"])
    query = search_query(parse_filter("params.max_depth = 5 or metrics.rmse > 3"), sort)
    with db.read() as conn:
        rows = conn.execute(query).mappings().all()
    assert [dict(row) for row in rows] == [
        {"id": "r2", "metrics.rmse": 3.5, "params.lr": "0.01"},
        {"id": "r1", "metrics.rmse": 2.5, "params.lr": "0.1"},
        {"id": "r3", "metrics.rmse": 1.0, "params.lr": "abc"},
    ]


ODD_PARAMS = {
    "7": True, "-2": False, "1e-3": True, "2.5E+3": True, "1e999": True, " 5\n": True, "0": False,
    "abc": False, "": False, "+5": False, ".5": False, "5.": False, "05": False, "nan": False, "inf": False,
    "0x10": False, "1_000": False, '"5"': False, "true": False, "[5]": False, "5 5": False, "1e99999": False,
}


def test_numeric_param_comparisons_never_fail_on_odd_text(db: Database) -> None:
    with db.transaction() as conn:
        for i, value in enumerate(ODD_PARAMS):
            add_run(conn, f"odd{i:02d}", minute=10 + i, experiment="odd", params={"x": value})
    expected = [f"odd{i:02d}" for i, positive in enumerate(ODD_PARAMS.values()) if positive]
    assert sorted(ids(db, "params.x > 0")) == expected
    run_of = {value: f"odd{i:02d}" for i, value in enumerate(ODD_PARAMS)}
    numbers_descending = ["1e999", "2.5E+3", "7", " 5\n", "1e-3", "0", "-2"]  # then the rest, as text
    assert ids(db, None, "-params.x", experiment="odd")[:7] == [run_of[v] for v in numbers_descending]
    assert ids(db, None, "params.x", experiment="odd")[:7] == [run_of[v] for v in reversed(numbers_descending)]


def test_experiment_status_and_limit(db: Database) -> None:
    assert ids(db, None, experiment="price") == ["r5", "r3", "r2", "r1"]
    assert ids(db, None, experiment="churn") == ["r4"]
    assert ids(db, None, experiment="nope") == []
    assert ids(db, None, status="finished") == ["r4", "r2", "r1"]
    assert ids(db, "metrics.rmse > 0", experiment="price", status="finished") == ["r2", "r1"]
    assert ids(db, None, "-metrics.rmse", limit=2) == ["r2", "r1"]
    assert ids(db, "params.max_depth >= 5", "params.max_depth", limit=3, experiment="price") == ["r3", "r1", "r2"]


def test_one_statement_whatever_the_filter() -> None:
    query = search_query(parse_filter("metrics.a < 1 and (params.b = 2 or tags.c like 'x%')"), parse_sort("-metrics.a"))
    sql = str(query.compile(dialect=sqlite.dialect()))
    # the top-level condition on a metric is an inner join, the two inside "or" are EXISTS, the sort key an outer join
    assert sql.count("EXISTS") == 2 and sql.count("LEFT OUTER JOIN") == 1 and sql.count(" JOIN ") == 2
    assert sql.rstrip().endswith("LIMIT ? OFFSET ?")


# ---------------------------------------------------------------- property: the database agrees with Python


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path_factory.mktemp('search')}/k.db")
    database.migrate()
    yield database
    database.dispose()


MISSING = object()
metric_values = st.one_of(st.just(MISSING), st.just(math.nan), st.floats(allow_nan=False, allow_infinity=False),
                          st.sampled_from([0.0, 1.0, -1.0, 2.5]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(metric_values, max_size=12),
       threshold=st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.sampled_from([0.0, 1.0, 2.5])))
def test_threshold_and_sort_agree_with_python(scratch: Database, values: list[Any], threshold: float) -> None:
    with scratch.transaction() as conn:
        for table in (run_latest_metrics, run_params, run_tags, runs):
            conn.execute(table.delete())
        for i, value in enumerate(values):
            metrics = {} if value is MISSING else {"m": None if math.isnan(value) else value}
            add_run(conn, f"r{i:02d}", minute=i % 5, metrics=metrics)  # repeated start times test the id tie-break

    present = {f"r{i:02d}": v for i, v in enumerate(values) if v is not MISSING and not math.isnan(v)}
    started = {f"r{i:02d}": i % 5 for i in range(len(values))}
    newest_first = sorted(started, key=lambda r: (-started[r], r))

    below = ids(scratch, f"metrics.m < {threshold!r}")
    assert below == [r for r in newest_first if r in present and present[r] < threshold]

    descending = ids(scratch, None, "-metrics.m")
    assert descending == sorted(present, key=lambda r: (-present[r], -started[r], r)) + [
        r for r in newest_first if r not in present
    ]
    ascending = ids(scratch, f"metrics.m >= {threshold!r}", "metrics.m")
    at_least = [r for r in present if present[r] >= threshold]
    assert ascending == sorted(at_least, key=lambda r: (present[r], -started[r], r))


# ---------------------------------------------------------------- search_runs: the listing's one statement


def test_search_runs_returns_each_runs_params_tags_and_exact_metrics(db: Database) -> None:
    odd = {"tiny": 5e-324, "huge": 1.7976931348623157e308, "third": 1 / 3, "neg": -1.1545580616824966e232,
           "inf": math.inf, "-inf": -math.inf, "nan": None, 'quote"key\\': 0.1, "ü ∑": 2.0 ** 53 + 2}
    text = {"q": "it's \"quoted\"", "nl": "a\nb\tc\\", "uni": "ü ∑ 🐍", "empty": ""}
    with db.transaction() as conn:
        add_run(conn, "odd", minute=30, experiment="odd", metrics=odd, params=text, tags=text)
        add_run(conn, "bare", minute=31, experiment="odd")
    with db.read() as conn:
        rows = {row.id: row for row in conn.execute(search_runs(None, None, experiment="odd"))}
    assert [json.loads(rows["bare"].data)] == [[{}, {}, {}]]
    params, tags, metrics = json.loads(rows["odd"].data)
    assert params == text and tags == text
    assert metrics == odd  # every double back exactly (== on floats), infinities and the NaN's null included
    assert stored_utc(rows["odd"].started_at) == T0 + timedelta(minutes=30) and rows["odd"].experiment == "odd"
    assert stored_utc(rows["odd"].ended_at) == T0 + timedelta(minutes=30, seconds=30)
    assert "environment" not in rows["odd"]._fields
    raw = db.rows(search_runs(None, None, experiment="odd"))  # the driver's rows: the same values
    assert [tuple(r) for r in rows.values()] == raw


def test_sqlite_here_prints_floats_exactly() -> None:
    assert sqlite_prints_floats_exactly()  # else keel lists runs with two queries (tested in test_runs.py)


def test_search_runs_statements_are_reused() -> None:
    first = search_runs("metrics.a < 1", "-metrics.a", experiment="x", limit=5)
    assert search_runs("metrics.a < 1", "-metrics.a", experiment="x", limit=5) is first
    as_list = search_runs("metrics.a < 1", ["-metrics.a"], experiment="x", limit=5)
    assert search_runs("metrics.a < 1", ["-metrics.a"], experiment="x", limit=5) is as_list
    assert search_runs("metrics.a < 2", "-metrics.a", experiment="x", limit=5) is not first
    with pytest.raises(InvalidInput, match="limit"):
        search_runs(None, None, limit=0)
