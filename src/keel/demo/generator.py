"""Seeded synthetic Airbnb-like ``listings`` for the demo (DESIGN.md section 5).

The demo has to tell the same story on every machine without shipping data, so the table is generated.
Prices are a log-linear function of neighbourhood, room type, size, minimum nights and host, with
multiplicative lognormal noise. Each month also carries the problems the story needs:

- bad rows (negative or null price, impossible coordinates) that break ``listings_contract.yaml``;
- exact duplicates (same ``listing_id``) that the contract's unique key catches;
- re-posts: a row copied under a new ``listing_id`` and a later ``listed_at`` (same month or the next),
  identical on every other column, which only a split's duplicate check catches;
- drift (``drift=True``): "Harbourfront" appears from month 8, prices rise 25% from month 9 (concept
  drift), and month 10 loses ``bathrooms`` upstream (all null).

Each month is drawn from its own generator seeded with ``(seed, month)``, and listing ids are
``month * 1_000_000 + i``: month 7 generated alone equals month 7 of a twelve-month call, and months
generated separately never collide. Everything is vectorised numpy; twelve months take milliseconds.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from keel.errors import InvalidInput

__all__ = [
    "COLUMNS",
    "LISTINGS_CONTRACT",
    "NEIGHBOURHOODS",
    "NEW_NEIGHBOURHOOD",
    "ROOM_TYPES",
    "generate_listings",
    "write_listings",
]

LISTINGS_CONTRACT = Path(__file__).with_name("listings_contract.yaml")
"""The contract the generated table is ingested with."""

COLUMNS = (
    "listing_id", "host_id", "listed_at", "neighbourhood", "room_type", "property_type", "accommodates",
    "bedrooms", "bathrooms", "beds", "latitude", "longitude", "minimum_nights", "number_of_reviews",
    "first_review", "last_review", "price",
)  # fmt: skip

CITY_CENTRE = (52.3676, 4.9041)

# name, price level, latitude offset, longitude offset, share of listings
_NEIGHBOURHOOD_TABLE = (
    ("Centrum", 1.55, 0.000, 0.000, 0.16),
    ("Canal Ring", 1.45, 0.006, -0.012, 0.12),
    ("Museum Quarter", 1.35, -0.012, -0.008, 0.08),
    ("Old West", 1.10, 0.004, -0.030, 0.10),
    ("Riverside", 1.05, -0.020, 0.020, 0.08),
    ("University", 0.90, -0.030, 0.005, 0.07),
    ("Park Side", 1.00, -0.010, -0.040, 0.08),
    ("Market District", 0.95, 0.012, 0.025, 0.08),
    ("North Docks", 0.85, 0.035, 0.010, 0.07),
    ("East Village", 0.90, -0.005, 0.045, 0.07),
    ("Garden Suburb", 0.75, -0.045, -0.030, 0.05),
    ("Airport Fringe", 0.65, -0.030, -0.090, 0.04),
    ("Harbourfront", 1.40, 0.025, 0.060, 0.00),  # drift: appears from month 8
)
NEIGHBOURHOODS = tuple(row[0] for row in _NEIGHBOURHOOD_TABLE[:-1])
NEW_NEIGHBOURHOOD = _NEIGHBOURHOOD_TABLE[-1][0]
_NB_LEVEL = np.array([row[1] for row in _NEIGHBOURHOOD_TABLE])
_NB_DLAT = np.array([row[2] for row in _NEIGHBOURHOOD_TABLE])
_NB_DLON = np.array([row[3] for row in _NEIGHBOURHOOD_TABLE])
_NB_SHARE = np.array([row[4] for row in _NEIGHBOURHOOD_TABLE])

ROOM_TYPES = ("Entire home/apt", "Private room", "Shared room", "Hotel room")
_ROOM_SHARE = np.array([0.62, 0.30, 0.03, 0.05])
_ROOM_BASE_PRICE = np.array([115.0, 58.0, 32.0, 100.0])

PROPERTY_TYPES = (
    "Apartment", "House", "Condominium", "Loft", "Townhouse", "Hostel", "Hotel", "Boutique hotel",
)  # fmt: skip
_PROPERTY_SHARE = np.array(
    [  # one row per room type
        [0.58, 0.15, 0.12, 0.08, 0.07, 0.00, 0.00, 0.00],
        [0.62, 0.20, 0.06, 0.02, 0.10, 0.00, 0.00, 0.00],
        [0.55, 0.10, 0.00, 0.00, 0.00, 0.35, 0.00, 0.00],
        [0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 0.55, 0.45],
    ]
)

_MIN_NIGHTS = np.array([1, 2, 3, 4, 5, 7, 14, 30])
_MIN_NIGHTS_SHARE = np.array([0.25, 0.25, 0.20, 0.08, 0.07, 0.08, 0.04, 0.03])

_ID_STRIDE = 1_000_000
_HOST_ID_BASE = 10_000
_DAY_US = 86_400 * 1_000_000
_NAT = np.iinfo(np.int64).min  # int64 view of NaT

_NEW_NEIGHBOURHOOD_MONTH = 8
_INFLATION_MONTH = 9
_INFLATION = 1.25
_BROKEN_BATHROOMS_MONTH = 10

Arrays = dict[str, np.ndarray]


@dataclass(frozen=True)
class _Plan:
    """Everything a month depends on besides its number, checked once."""

    seed: int
    start: pd.Timestamp
    n_base: int
    n_bad: int
    n_dup: int
    n_repost: int
    drift: bool
    host_share: np.ndarray
    host_effect: np.ndarray

    def bounds(self, month: int) -> tuple[int, int]:
        """The month's [start, end) in microseconds since the epoch."""
        lo = self.start + pd.DateOffset(months=month - 1)
        hi = self.start + pd.DateOffset(months=month)
        return lo.value // 1000, hi.value // 1000


def generate_listings(
    months: range | list[int],
    *,
    seed: int = 7,
    rows_per_month: int = 1500,
    bad_fraction: float = 0.02,
    duplicate_fraction: float = 0.01,
    repost_fraction: float = 0.02,
    start: datetime = datetime(2024, 1, 1, tzinfo=UTC),
    drift: bool = True,
) -> pd.DataFrame:
    """The listings of ``months`` (1 = the month starting at ``start``), sorted by ``listed_at``.

    Each month has exactly ``rows_per_month`` rows, of which ``round(f * rows_per_month)`` are bad,
    exact duplicates and re-posts for the three fractions.
    """
    month_list = _check_months(months)
    plan = _plan(seed, rows_per_month, bad_fraction, duplicate_fraction, repost_fraction, start, drift)
    parts = [_month(plan, month) for month in month_list] or [_take(_month(plan, 1), np.arange(0))]
    cols = {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
    order = np.argsort(cols["listed_at"], kind="stable")
    return _frame({name: values[order] for name, values in cols.items()})


def write_listings(df: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write ``df`` as CSV, Parquet or JSON Lines, chosen by the extension, atomically; return the path.

    CSV and JSON Lines hold timestamps as ISO 8601 UTC strings (``2024-01-31T12:00:00.000000Z``).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in {".csv", ".parquet", ".jsonl"}:
        raise InvalidInput(f"cannot write {path.name!r}: use a .csv, .parquet or .jsonl file name")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        if suffix == ".parquet":
            df.to_parquet(tmp, index=False, engine="pyarrow")
        elif suffix == ".csv":
            _iso_timestamps(df).to_csv(tmp, index=False)
        else:
            _iso_timestamps(df).to_json(
                tmp, orient="records", lines=True, double_precision=15, force_ascii=False
            )
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _check_months(months: Iterable[int]) -> list[int]:
    """Months as a list of distinct positive ints, or a clear error."""
    if isinstance(months, int | str):
        raise InvalidInput(f"months must be a range or list of month numbers, got {months!r}")
    out = list(months)
    for month in out:
        if isinstance(month, bool) or not isinstance(month, int | np.integer) or month < 1:
            raise InvalidInput(f"months are numbered from 1 (the month starting at start), got {month!r}")
    if len(set(out)) != len(out):
        raise InvalidInput(f"months must not repeat, got {out}")
    return [int(month) for month in out]


def _plan(seed: int, rows: int, bad: float, dup: float, repost: float, start: datetime, drift: bool) -> _Plan:
    """Validate the arguments once and derive the counts and the host pool."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise InvalidInput(f"seed must be a non-negative int, got {seed!r}")
    if isinstance(rows, bool) or not isinstance(rows, int | np.integer) or not 1 <= rows < _ID_STRIDE:
        raise InvalidInput(f"rows_per_month must be an int in [1, {_ID_STRIDE}), got {rows!r}")
    for name, value in (("bad_fraction", bad), ("duplicate_fraction", dup), ("repost_fraction", repost)):
        if not 0.0 <= value < 1.0:
            raise InvalidInput(f"{name} must be in [0, 1), got {value!r}")
    if not isinstance(start, datetime) or start.tzinfo is None or start.utcoffset() is None:
        raise InvalidInput(f"start must be a timezone-aware datetime, got {start!r}")
    n_bad, n_dup, n_repost = (int(np.floor(f * rows + 0.5)) for f in (bad, dup, repost))
    n_base = rows - n_dup - n_repost
    if n_base - n_bad < 1 or (n_dup and n_dup > n_base - n_bad + n_repost):
        raise InvalidInput(
            "bad_fraction + duplicate_fraction + repost_fraction leave no good rows to copy; lower them"
        )
    n_hosts = max(20, rows // 2)
    host_rng = np.random.default_rng([seed, 0])
    share = 1.0 / np.arange(1, n_hosts + 1) ** 0.5  # a few hosts with many listings, a long tail
    return _Plan(
        seed=int(seed),
        start=pd.Timestamp(start).tz_convert("UTC"),
        n_base=n_base,
        n_bad=n_bad,
        n_dup=n_dup,
        n_repost=n_repost,
        drift=bool(drift),
        host_share=host_rng.permutation(share / share.sum()),
        host_effect=np.exp(host_rng.normal(0.0, 0.12, n_hosts)),
    )


def _base(plan: _Plan, month: int) -> tuple[Arrays, np.ndarray]:
    """A month's original listings, bad rows already broken, and the mask of the good ones."""
    rng = np.random.default_rng([plan.seed, month])
    n = plan.n_base
    lo, hi = plan.bounds(month)
    listed_at = lo + rng.integers(0, hi - lo, n)

    share = _NB_SHARE.copy()
    if plan.drift and month >= _NEW_NEIGHBOURHOOD_MONTH:
        share *= 0.9
        share[-1] = 0.1
    nb = rng.choice(len(share), n, p=share)
    room = rng.choice(len(ROOM_TYPES), n, p=_ROOM_SHARE)
    prop = _choose_per_row(rng, _PROPERTY_SHARE[room])
    host = rng.choice(len(plan.host_share), n, p=plan.host_share)

    u = rng.random(n)
    entire = 2 + rng.poisson(1.6, n) + (rng.random(n) < 0.04) * rng.poisson(6, n)
    acc = np.select(
        [room == 0, room == 1, room == 2], [entire, 1 + (u < 0.75) + (u < 0.1), 1 + (u < 0.3)], 2 + (u < 0.4)
    )
    acc = np.clip(acc, 1, 16).astype(np.int64)
    bedrooms_entire = np.clip(np.rint(acc / 2 + rng.normal(-0.3, 0.6, n)), np.where(acc <= 2, 0, 1), 10)
    bedrooms = np.where(room == 0, np.minimum(bedrooms_entire, acc), 1).astype(np.int64)
    beds = np.maximum(np.rint(acc / 1.6 + rng.normal(0.0, 0.4, n)), np.maximum(bedrooms, 1))
    beds = np.where(room == 2, 1, np.minimum(beds, acc)).astype(np.int64)
    bath_raw = 1 + 0.5 * np.maximum(bedrooms - 1, 0) + rng.normal(0, 0.35, n)
    bath_entire = np.clip(np.rint(bath_raw * 2) / 2, 1, 8)  # halves
    bathrooms = np.where(room == 0, bath_entire, np.where((room == 1) & (rng.random(n) < 0.2), 1.5, 1.0))

    latitude = np.round(CITY_CENTRE[0] + _NB_DLAT[nb] + rng.normal(0.0, 0.006, n), 6)
    longitude = np.round(CITY_CENTRE[1] + _NB_DLON[nb] + rng.normal(0.0, 0.009, n), 6)
    min_nights = np.where(room == 3, 1, rng.choice(_MIN_NIGHTS, n, p=_MIN_NIGHTS_SHARE)).astype(np.int64)

    reviewed = rng.random(n) >= 0.15
    age_us = (rng.uniform(30, 1500, n) * _DAY_US).astype(np.int64)
    per_month = rng.gamma(2.0, 0.6, n)
    n_reviews = np.where(reviewed, 1 + rng.poisson(age_us / _DAY_US / 30 * per_month), 0).astype(np.int64)
    first = (listed_at - age_us) // _DAY_US * _DAY_US
    last = (first + (rng.random(n) * (listed_at - first)).astype(np.int64)) // _DAY_US * _DAY_US

    log_price = (
        np.log(_ROOM_BASE_PRICE[room] * _NB_LEVEL[nb] * plan.host_effect[host])
        + 0.075 * (acc - 2)
        + 0.10 * (bedrooms - 1)
        + 0.08 * (bathrooms - 1)
        - 0.04 * np.log(min_nights)
        + rng.normal(0.0, 0.25, n)
    )
    price = np.exp(log_price) * (_INFLATION if plan.drift and month >= _INFLATION_MONTH else 1.0)
    price = np.maximum(np.rint(price), 10.0)

    cols: Arrays = {
        "host_id": _HOST_ID_BASE + host.astype(np.int64),
        "listed_at": listed_at,
        "neighbourhood": nb,
        "room_type": room,
        "property_type": prop,
        "accommodates": acc,
        "bedrooms": bedrooms,
        "bathrooms": bathrooms.astype(np.float64),
        "beds": beds,
        "latitude": latitude,
        "longitude": longitude,
        "minimum_nights": min_nights,
        "number_of_reviews": n_reviews,
        "first_review": np.where(reviewed, first, _NAT),
        "last_review": np.where(reviewed, last, _NAT),
        "price": price,
    }
    good = np.ones(n, dtype=bool)
    bad = rng.choice(n, plan.n_bad, replace=False)
    kind = rng.permutation(np.arange(plan.n_bad) % 4)
    good[bad] = False
    cols["price"][bad[kind == 0]] *= -1.0  # a sign error upstream
    cols["price"][bad[kind == 1]] = np.nan  # price not scraped
    cols["latitude"][bad[kind == 2]] *= 10.0  # decimal point lost
    cols["longitude"][bad[kind == 3]] = 999.0  # sentinel for "unknown"
    return cols, good


def _month(plan: _Plan, month: int) -> Arrays:
    """One month: originals, re-posts (new id, later time) and exact duplicates, sorted by time."""
    cols, good = _base(plan, month)
    rng = np.random.default_rng([plan.seed, month, 1])
    lo, hi = plan.bounds(month)
    n = plan.n_repost
    if n:
        # same-month re-posts: a strictly later time inside the month
        same = rng.choice(np.flatnonzero(good & (cols["listed_at"] < hi - 1)), n)
        src_at = cols["listed_at"][same]
        same_at = src_at + 1 + (rng.random(n) * (hi - 1 - src_at)).astype(np.int64)
        reposts = _take(cols, same)
        reposts["listed_at"] = same_at
        if month > 1:  # half come from last month, re-posted at any time this month
            prev_cols, prev_good = _base(plan, month - 1)
            from_prev = rng.random(n) < 0.5
            prev = _take(prev_cols, rng.choice(np.flatnonzero(prev_good), n))
            prev["listed_at"] = lo + rng.integers(0, hi - lo, n)
            reposts = {k: np.where(from_prev, prev[k], reposts[k]) for k in reposts}
        cols = {k: np.concatenate([cols[k], reposts[k]]) for k in cols}
        good = np.concatenate([good, np.ones(n, dtype=bool)])

    order = np.argsort(cols["listed_at"], kind="stable")
    cols, good = _take(cols, order), good[order]
    cols["listing_id"] = month * _ID_STRIDE + np.arange(len(good), dtype=np.int64)
    if plan.n_dup:
        copies = rng.choice(np.flatnonzero(good), plan.n_dup, replace=False)
        cols = {k: np.concatenate([v, v[copies]]) for k, v in cols.items()}
        cols = _take(cols, np.argsort(cols["listed_at"], kind="stable"))
    if plan.drift and month == _BROKEN_BATHROOMS_MONTH:
        cols["bathrooms"] = np.full(len(cols["bathrooms"]), np.nan)
    return cols


def _choose_per_row(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One category index per row, each row with its own probabilities (rows of ``probs``)."""
    cumulative = probs.cumsum(axis=1)
    picks = (rng.random(len(probs))[:, None] * cumulative[:, -1:] >= cumulative).sum(axis=1)
    return np.minimum(picks, probs.shape[1] - 1)


def _take(cols: Arrays, index: np.ndarray) -> Arrays:
    return {name: values[index] for name, values in cols.items()}


def _frame(cols: Arrays) -> pd.DataFrame:
    """Typed DataFrame from the raw arrays: strings from codes, timestamps from microseconds."""
    names = {"neighbourhood": (*NEIGHBOURHOODS, NEW_NEIGHBOURHOOD), "room_type": ROOM_TYPES,
             "property_type": PROPERTY_TYPES}  # fmt: skip
    data = {}
    for name in COLUMNS:
        values = cols[name]
        if name in names:
            data[name] = pd.array(np.asarray(names[name], dtype=object)[values], dtype="str")
        elif name in {"listed_at", "first_review", "last_review"}:
            data[name] = pd.DatetimeIndex(values.astype(np.int64).view("datetime64[us]")).tz_localize("UTC")
        else:
            data[name] = values
    return pd.DataFrame(data)


def _iso_timestamps(df: pd.DataFrame) -> pd.DataFrame:
    """A copy with tz-aware timestamp columns as ISO 8601 UTC strings (null stays null)."""
    out = df.copy()
    for name in out.columns:
        if isinstance(out[name].dtype, pd.DatetimeTZDtype):
            out[name] = out[name].dt.tz_convert("UTC").dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return out
