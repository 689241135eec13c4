"""The demo's listings generator: seeded, split-stable, and broken exactly where the story needs it."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from keel.demo.generator import (
    COLUMNS,
    LISTINGS_CONTRACT,
    NEIGHBOURHOODS,
    NEW_NEIGHBOURHOOD,
    ROOM_TYPES,
    generate_listings,
    write_listings,
)
from keel.errors import InvalidInput

ROWS = 1500
N_BAD = N_REPOST = 30  # 2% of 1500
N_DUP = 15  # 1% of 1500
FEATURES = [c for c in COLUMNS if c not in ("listing_id", "listed_at")]
START = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def year() -> pd.DataFrame:
    return generate_listings(range(1, 13))


@pytest.fixture(scope="module")
def year_without_drift() -> pd.DataFrame:
    return generate_listings(range(1, 13), drift=False)


@pytest.fixture(scope="module")
def contract() -> dict:
    return yaml.safe_load(LISTINGS_CONTRACT.read_text())


def month_of(df: pd.DataFrame) -> pd.Series:
    """Month number of each row's listed_at, counted from START (1 = January 2024)."""
    return months_since_start(df["listed_at"])


def months_since_start(at: pd.Series) -> pd.Series:
    return (at.dt.year - 2024) * 12 + at.dt.month


def violations(df: pd.DataFrame, contract: dict) -> pd.Series:
    """Rows that break a row-level rule of the contract (nullable, min, max, allowed)."""
    bad = pd.Series(False, index=df.index)
    for name, rule in contract["columns"].items():
        col = df[name]
        if rule.get("nullable", True) is False:
            bad |= col.isna()
        if "min" in rule:
            bad |= (col < rule["min"]).fillna(False).astype(bool)
        if "max" in rule:
            bad |= (col > rule["max"]).fillna(False).astype(bool)
        if "allowed" in rule:
            bad |= ~col.isin(rule["allowed"]) & col.notna()
    return bad


def test_same_arguments_give_the_same_frame_and_another_seed_does_not() -> None:
    a = generate_listings(range(1, 4), seed=3, rows_per_month=300)
    b = generate_listings(range(1, 4), seed=3, rows_per_month=300)
    pd.testing.assert_frame_equal(a, b)
    c = generate_listings(range(1, 4), seed=4, rows_per_month=300)
    for name in ["listed_at", "latitude", "longitude"]:  # continuous: any overlap is the same draw
        assert len(set(a[name]) & set(c[name])) < 0.05 * len(a), name


@pytest.mark.parametrize("month", [1, 7, 8, 10, 12])
def test_a_month_alone_equals_that_month_of_a_year(year: pd.DataFrame, month: int) -> None:
    alone = generate_listings([month])
    part = year[month_of(year) == month].reset_index(drop=True)
    pd.testing.assert_frame_equal(alone, part)


def test_months_generated_separately_concatenate_to_the_whole_and_never_collide() -> None:
    first, seventh = generate_listings(range(1, 7)), generate_listings([7])
    assert not set(first["listing_id"]) & set(seventh["listing_id"])
    joined = pd.concat([first, seventh], ignore_index=True)
    pd.testing.assert_frame_equal(joined, generate_listings(range(1, 8)))
    pd.testing.assert_frame_equal(generate_listings([7, 2]), generate_listings([2, 7]))


def test_columns_and_dtypes(year: pd.DataFrame) -> None:
    assert tuple(year.columns) == COLUMNS
    ints = [
        "listing_id",
        "host_id",
        "accommodates",
        "bedrooms",
        "beds",
        "minimum_nights",
        "number_of_reviews",
    ]
    for name in ints:
        assert year[name].dtype == np.dtype("int64"), name
    for name in ["bathrooms", "latitude", "longitude", "price"]:
        assert year[name].dtype == np.dtype("float64"), name
    for name in ["neighbourhood", "room_type", "property_type"]:
        assert isinstance(year[name].dtype, pd.StringDtype), name
    for name in ["listed_at", "first_review", "last_review"]:
        assert str(year[name].dtype) == "datetime64[us, UTC]", name
    assert isinstance(year.index, pd.RangeIndex)
    assert len(year) == 12 * ROWS


def test_review_dates_are_null_exactly_when_there_are_no_reviews(year: pd.DataFrame) -> None:
    no_reviews = year["number_of_reviews"] == 0
    assert 0 < no_reviews.mean() < 0.5
    assert (year["first_review"].isna() == no_reviews).all()
    assert (year["last_review"].isna() == no_reviews).all()
    reviewed = year[~no_reviews]
    assert (reviewed["first_review"] <= reviewed["last_review"]).all()
    assert (reviewed["last_review"] <= reviewed["listed_at"]).all()


def test_values_are_plausible_and_price_follows_the_features(year_without_drift: pd.DataFrame) -> None:
    df = year_without_drift.drop_duplicates()
    assert set(df["room_type"]) == set(ROOM_TYPES)
    assert set(df["neighbourhood"]) == set(NEIGHBOURHOODS)
    assert df["accommodates"].between(1, 16).all()
    assert ((df["bathrooms"] * 2) % 1 == 0).all()  # halves
    assert (df["beds"] >= 1).all() and (df["minimum_nights"] >= 1).all()
    hosts = df["host_id"].value_counts()
    assert hosts.max() > 5 and len(hosts) < len(df) / 5  # hosts have several listings

    good = df[df["price"] > 0]
    assert good["price"].between(30, 600).mean() > 0.9
    by_room = good.groupby("room_type")["price"].median()
    assert by_room["Entire home/apt"] > by_room["Private room"] > by_room["Shared room"]
    by_area = good.groupby("neighbourhood")["price"].median()
    assert by_area["Centrum"] > 1.5 * by_area["Airport Fringe"]
    assert np.corrcoef(good["accommodates"], np.log(good["price"]))[0, 1] > 0.3
    city = good[(good["latitude"] <= 90) & (good["longitude"] <= 180)]
    assert city["latitude"].between(52.2, 52.5).all() and city["longitude"].between(4.7, 5.1).all()


def test_every_generated_column_is_declared_in_the_contract_with_its_dtype(
    year: pd.DataFrame, contract: dict
) -> None:
    assert contract["table"] == "listings" and contract["target"] == "price"
    assert contract["key"] == ["listing_id"]
    assert set(contract["columns"]) == set(COLUMNS)
    for name, rule in contract["columns"].items():
        dtype = year[name].dtype
        expected = {
            "int64": lambda d: d == np.dtype("int64"),
            "float64": lambda d: d == np.dtype("float64"),
            "string": lambda d: isinstance(d, pd.StringDtype),
            "timestamp": lambda d: isinstance(d, pd.DatetimeTZDtype) and str(d.tz) == "UTC",
        }[rule["dtype"]]
        assert expected(dtype), (name, rule["dtype"], dtype)
    assert "allowed" not in contract["columns"]["neighbourhood"]
    assert contract["columns"]["bathrooms"]["nullable"] is True


def test_bad_rows_come_at_the_right_rate_and_each_breaks_the_contract(
    year: pd.DataFrame, contract: dict
) -> None:
    bad = violations(year, contract)
    assert (bad.groupby(month_of(year)).sum() == N_BAD).all()
    rows = year[bad]
    negative = (rows["price"] < 0).sum()
    null_price = rows["price"].isna().sum()
    off_map = ((rows["latitude"] > 90) | (rows["longitude"] > 180)).sum()
    assert min(negative, null_price, off_map) > 0
    assert negative + null_price + off_map == len(rows)  # nothing else is wrong with them
    assert ((rows["latitude"] > 90).sum(), (rows["longitude"] > 180).sum()) > (0, 0)


def test_without_bad_rows_nothing_breaks_the_contract(contract: dict) -> None:
    clean = generate_listings(range(1, 13), rows_per_month=400, bad_fraction=0)
    assert not violations(clean, contract).any()


def test_only_exact_duplicates_repeat_a_listing_id(year: pd.DataFrame) -> None:
    repeated = year["listing_id"].duplicated(keep=False)
    exact = year.duplicated(keep=False)
    assert (repeated == exact).all()
    assert (year["listing_id"].duplicated().groupby(month_of(year)).sum() == N_DUP).all()
    ids = year["listing_id"].drop_duplicates()
    assert ((ids // 1_000_000) == month_of(year.loc[ids.index])).all()


def test_reposts_are_identical_but_for_id_and_time(year_without_drift: pd.DataFrame) -> None:
    df = year_without_drift.drop_duplicates().sort_values("listed_at", kind="stable")
    assert df["listing_id"].is_unique  # the contract's key does not catch re-posts
    repost = df.duplicated(subset=FEATURES, keep="first")
    assert (repost.groupby(month_of(df)).sum() == N_REPOST).all()

    group = df.groupby(FEATURES, dropna=False, sort=False).ngroup()
    first_at = df.groupby(group)["listed_at"].transform("min")
    first_month = months_since_start(first_at)
    later = df[repost]
    assert (later["listed_at"] > first_at[repost]).all()
    gap = month_of(later) - first_month[repost]
    assert set(gap) == {0, 1}  # re-posted in the same month or the next


def test_reposts_survive_drift_except_the_broken_column(year: pd.DataFrame) -> None:
    df = year.drop_duplicates().sort_values("listed_at", kind="stable")
    repost = df.duplicated(subset=[c for c in FEATURES if c != "bathrooms"], keep="first")
    assert (repost.groupby(month_of(df)).sum() == N_REPOST).all()


def test_drift_starts_in_the_right_months(year: pd.DataFrame, year_without_drift: pd.DataFrame) -> None:
    month, month_nd = month_of(year), month_of(year_without_drift)
    pd.testing.assert_frame_equal(year[month <= 7], year_without_drift[month_nd <= 7])

    share = (year["neighbourhood"] == NEW_NEIGHBOURHOOD).groupby(month).mean()
    assert (share[share.index < 8] == 0).all()
    assert share[share.index >= 8].between(0.06, 0.14).all()
    assert not (year_without_drift["neighbourhood"] == NEW_NEIGHBOURHOOD).any()

    def median_ratio(df: pd.DataFrame, months: pd.Series) -> float:
        price = df["price"].where(df["price"] > 0)
        return price[months >= 9].median() / price[months == 8].median()

    assert 1.15 < median_ratio(year, month) < 1.35
    assert 0.9 < median_ratio(year_without_drift, month_nd) < 1.1

    null_bathrooms = year["bathrooms"].isna().groupby(month).mean()
    assert null_bathrooms[10] == 1.0
    assert (null_bathrooms.drop(10) == 0).all()
    assert not year_without_drift["bathrooms"].isna().any()


def test_timestamps_are_utc_sorted_and_inside_their_month(year: pd.DataFrame) -> None:
    assert str(year["listed_at"].dt.tz) == "UTC"
    assert year["listed_at"].is_monotonic_increasing
    for m in range(1, 13):
        at = year.loc[month_of(year) == m, "listed_at"]
        lo = pd.Timestamp(START) + pd.DateOffset(months=m - 1)
        assert len(at) == ROWS and at.min() >= lo and at.max() < lo + pd.DateOffset(months=1)
        assert at.max() - at.min() > pd.Timedelta(days=25)  # spread over the month


def test_start_in_another_zone_is_converted_and_naive_start_is_rejected() -> None:
    start = datetime(2023, 7, 1, 2, tzinfo=timezone(timedelta(hours=2)))  # 2023-07-01T00:00Z
    df = generate_listings([2], rows_per_month=200, start=start)
    assert str(df["listed_at"].dt.tz) == "UTC"
    assert df["listed_at"].min() >= pd.Timestamp("2023-08-01", tz="UTC")
    assert df["listed_at"].max() < pd.Timestamp("2023-09-01", tz="UTC")
    with pytest.raises(InvalidInput):
        generate_listings([1], start=datetime(2024, 1, 1))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"months": [0]},
        {"months": [1, 1]},
        {"months": 3},
        {"months": [1], "rows_per_month": 0},
        {"months": [1], "bad_fraction": 1.5},
        {"months": [1], "seed": -1},
        {"months": [1], "duplicate_fraction": 0.5, "repost_fraction": 0.5},
    ],
)
def test_bad_arguments_are_rejected(kwargs: dict) -> None:
    months = kwargs.pop("months")
    with pytest.raises(InvalidInput):
        generate_listings(months, **kwargs)


def test_no_months_give_an_empty_typed_frame(year: pd.DataFrame) -> None:
    empty = generate_listings([])
    assert len(empty) == 0
    pd.testing.assert_series_equal(empty.dtypes, year.dtypes)


@pytest.fixture(scope="module")
def small() -> pd.DataFrame:
    """Month 10 carries every kind of null: bathrooms, prices, review dates."""
    df = generate_listings([9, 10], rows_per_month=300)
    assert df["bathrooms"].isna().any() and df["price"].isna().any() and df["first_review"].isna().any()
    return df


def read_back(path: Path, like: pd.DataFrame) -> pd.DataFrame:
    stamps = ["listed_at", "first_review", "last_review"]
    if path.suffix == ".parquet":
        return pq.read_table(path).to_pandas()
    raw = pd.read_csv(path) if path.suffix == ".csv" else pd.read_json(path, lines=True, dtype=False)
    for name in stamps:
        raw[name] = pd.to_datetime(raw[name], utc=True, format="ISO8601")
    return raw.astype(like.dtypes.to_dict())


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_write_listings_round_trips(tmp_path: Path, small: pd.DataFrame, suffix: str) -> None:
    path = write_listings(small, tmp_path / "out" / f"listings{suffix}")
    assert path == tmp_path / "out" / f"listings{suffix}"
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left behind
    back = read_back(path, small)
    pd.testing.assert_frame_equal(back, small, check_dtype=suffix == ".parquet")
    assert (back.dtypes == small.dtypes).all()
    if suffix != ".parquet":
        text = path.read_text()
        assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", text)
        assert "+00:00 " not in text and " 00:" not in text


def test_write_listings_rejects_unknown_extensions(tmp_path: Path, small: pd.DataFrame) -> None:
    with pytest.raises(InvalidInput):
        write_listings(small, tmp_path / "listings.xlsx")
    assert not list(tmp_path.iterdir())
