"""ws.data end to end (issue 2: "Versioned tables" and "Data contracts"), through the SDK only.

The core tests take ``any_ws`` so they also run with PostgreSQL metadata when KEEL_TEST_POSTGRES_URL is set.
"""

from __future__ import annotations

import hashlib
import os
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import sqlalchemy as sa
import yaml

import keel
from keel.data.profiles import content_hash
from keel.demo.generator import COLUMNS, LISTINGS_CONTRACT, generate_listings, write_listings
from keel.errors import InvalidInput, NotFound, SchemaMismatch, ValidationFailed
from keel.storage import schema

ROWS = 200  # per month: small data keeps the suite fast


def clean(months, **kw) -> pd.DataFrame:
    """Listings without bad rows, duplicates or re-posts."""
    return generate_listings(months, rows_per_month=ROWS, bad_fraction=0.0, duplicate_fraction=0.0,
                             repost_fraction=0.0, **kw)


def dirty(months) -> pd.DataFrame:
    """Listings with the generator's bad rows and exact duplicates (4% bad, 2% duplicates)."""
    return generate_listings(months, rows_per_month=ROWS, bad_fraction=0.04, duplicate_fraction=0.02)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def edges_count(ws: keel.Workspace) -> int:
    with ws.db.read() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(schema.lineage_edges)).scalar_one()


def upstream_refs(ws: keel.Workspace, ref: str) -> dict[str, str]:
    """Direct parents of ``ref``: {parent ref: relation}."""
    return {c.ref: c.relation for c in ws.lineage.upstream(ref, 1).children}


def downstream_refs(ws: keel.Workspace, ref: str) -> dict[str, str]:
    return {c.ref: c.relation for c in ws.lineage.downstream(ref, 1).children}


def recomputed_hash(ws: keel.Workspace, ref: str) -> str:
    data = ws.data.read_arrow(ref)
    return content_hash(data, data.column_names)


def expected_bad_rows(df: pd.DataFrame) -> dict[tuple[str, str], int]:
    """What the listings contract must find in ``df``, computed independently with pandas."""
    return {
        ("not_null", "price"): int(df["price"].isna().sum()),
        ("min", "price"): int((df["price"] < 0).sum()),
        ("max", "latitude"): int((df["latitude"] > 90).sum()),
        ("max", "longitude"): int((df["longitude"] > 180).sum()),
        ("unique_key", "listing_id"): int(df["listing_id"].duplicated(keep="first").sum()),
    }


def bad_mask(df: pd.DataFrame) -> pd.Series:
    return (df["price"].isna() | (df["price"] < 0) | (df["latitude"] > 90) | (df["longitude"] > 180)
            | df["listing_id"].duplicated(keep="first"))


def table_files(ws: keel.Workspace, name: str) -> list[Path]:
    return sorted(p for p in (ws.root / ".keel" / "data" / name).rglob("*.parquet"))


# -- ingest and version metadata ------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_ingest_records_version_metadata(any_ws: keel.Workspace, tmp_path: Path, fmt: str) -> None:
    df = clean([1])
    path = write_listings(df, tmp_path / f"listings.{fmt}")

    result = any_ws.data.ingest(path, "listings")

    v = result.version
    assert (v.table, v.version, v.ref) == ("listings", 0, "table:listings@0")
    assert result.rows_read == result.rows_written == v.row_count == v.rows_added == len(df)
    assert result.rows_quarantined == 0 and result.quarantine_version is None
    assert list(v.schema) == list(COLUMNS)
    assert v.schema["listing_id"] == "int64" and v.schema["price"] == "double"
    assert v.content_hash == recomputed_hash(any_ws, "listings@0")
    assert v.source_name == path.name
    assert v.source_hash == sha256(path)
    assert v.created_by == any_ws.user
    assert v.committed_at.tzinfo is not None
    # the same record comes back from the metadata store
    assert any_ws.data.history("listings") == [v]
    assert any_ws.data.version("listings@0") == v
    # lineage: file:NAME@sha256:HASH -> table:listings@0
    parents = upstream_refs(any_ws, v.ref)
    file_refs = [r for r, rel in parents.items() if rel == "ingested_from"]
    assert len(file_refs) == 1
    name, _, digest = file_refs[0].removeprefix("file:").rpartition("@sha256:")
    assert name == path.name and len(digest) >= 8 and sha256(path).startswith(digest)
    # the rows are the file's rows
    back = any_ws.data.read("listings")
    assert sorted(back["listing_id"]) == sorted(df["listing_id"])
    np.testing.assert_allclose(back.sort_values("listing_id")["price"], df.sort_values("listing_id")["price"])


def test_ingest_parquet_keeps_types_and_values(ws: keel.Workspace, tmp_path: Path) -> None:
    df = clean([1])
    ws.data.ingest(write_listings(df, tmp_path / "m1.parquet"), "listings")
    back = ws.data.read("listings").sort_values("listing_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(back, df.sort_values("listing_id").reset_index(drop=True), check_dtype=False)
    assert ws.data.version("listings").schema["listed_at"] == "timestamp[us, tz=UTC]"


def test_ingest_jsonl_with_time_column_and_contract(ws: keel.Workspace, tmp_path: Path) -> None:
    df = dirty([1])
    path = write_listings(df, tmp_path / "m1.jsonl")
    result = ws.data.ingest(path, "listings", time_column="listed_at", contract=LISTINGS_CONTRACT,
                            on_bad_rows="quarantine")
    assert result.version.schema["listed_at"] == "timestamp[us, tz=UTC]"
    assert result.rows_quarantined == int(bad_mask(df).sum())
    back = ws.data.read("listings").sort_values("listing_id")
    good = df[~bad_mask(df)].sort_values("listing_id")
    assert (back["listed_at"].to_numpy() == good["listed_at"].to_numpy()).all()


def test_append_makes_a_new_version(any_ws: keel.Workspace, tmp_path: Path) -> None:
    m1, m2 = clean([1]), clean([2])
    first = any_ws.data.ingest(write_listings(m1, tmp_path / "m1.parquet"), "listings", time_column="listed_at")
    path2 = write_listings(m2, tmp_path / "m2.csv")
    second = any_ws.data.ingest(path2, "listings")

    v = second.version
    assert v.version == 1 and v.operation == "append"
    assert v.rows_added == len(m2) and v.row_count == len(m1) + len(m2)
    assert v.source_name == "m2.csv" and v.source_hash == sha256(path2)
    assert v.content_hash == recomputed_hash(any_ws, "listings@1") != first.version.content_hash
    assert [h.version for h in any_ws.data.history("listings")] == [1, 0]
    assert len(any_ws.data.read("listings@0")) == len(m1)
    assert len(any_ws.data.read("listings")) == len(m1) + len(m2)
    parents = upstream_refs(any_ws, v.ref)
    assert parents.get("table:listings@0") == "next_version"
    assert any(r.startswith("file:m2.csv@sha256:") and rel == "ingested_from" for r, rel in parents.items())


def test_content_hash_follows_the_rows_not_the_file(ws: keel.Workspace, tmp_path: Path) -> None:
    df = clean([1])
    v0 = ws.data.ingest(write_listings(df, tmp_path / "m1.parquet"), "listings").version
    shuffled = write_listings(df.sample(frac=1.0, random_state=3), tmp_path / "shuffled.parquet")
    v1 = ws.data.ingest(shuffled, "listings", mode="overwrite").version
    assert v1.source_hash != v0.source_hash  # another file ...
    assert v1.content_hash == v0.content_hash  # ... with the same rows
    changed = df.copy()
    changed.loc[0, "price"] += 1
    v2 = ws.data.ingest(write_listings(changed, tmp_path / "changed.parquet"), "listings", mode="overwrite").version
    assert v2.content_hash != v0.content_hash
    v3 = ws.data.ingest(shuffled, "listings").version  # the same rows appended again: a different multiset
    assert v3.content_hash not in (v0.content_hash, v2.content_hash)
    assert v3.content_hash == recomputed_hash(ws, "listings@3")


def test_time_travel_by_version_and_timestamp(any_ws: keel.Workspace, tmp_path: Path) -> None:
    months = [clean([m]) for m in (1, 2, 3)]
    for i, df in enumerate(months):
        any_ws.data.ingest(write_listings(df, tmp_path / f"m{i}.parquet"), "listings")
        time.sleep(0.06)
    v0, v1, v2 = sorted(any_ws.data.history("listings"), key=lambda v: v.version)
    assert v0.committed_at < v1.committed_at < v2.committed_at

    for n, expected in ((0, ROWS), (1, 2 * ROWS), (2, 3 * ROWS)):
        assert len(any_ws.data.read(f"listings@{n}")) == expected
    assert any_ws.data.version("listings") == v2

    between = v0.committed_at + (v1.committed_at - v0.committed_at) / 2
    assert any_ws.data.version(f"listings@{between.isoformat()}").version == 0
    assert len(any_ws.data.read(f"listings@{between.isoformat()}")) == ROWS
    zulu = between.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert any_ws.data.version(f"listings@{zulu}").version == 0
    # exactly at a commit is that commit; after the last is the latest
    assert any_ws.data.version(f"listings@{v1.committed_at.isoformat()}").version == 1
    later = v2.committed_at + timedelta(days=1)
    assert any_ws.data.version(f"listings@{later.isoformat()}").version == 2
    # an offset is converted to UTC
    plus2 = (between + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S.%f+02:00")
    assert any_ws.data.version(f"listings@{plus2}").version == 0


# -- column subsets and partition pruning ---------------------------------------------------------


def test_read_columns_and_partition_filter_touch_only_matching_files(ws: keel.Workspace, tmp_path: Path) -> None:
    df = clean([1, 2])
    ws.data.ingest(write_listings(df, tmp_path / "m.parquet"), "listings", partition_by=["room_type"])
    assert ws.data.tables()[0].partition_by == ["room_type"]

    subset = ws.data.read("listings", columns=["listing_id", "price"])
    assert list(subset.columns) == ["listing_id", "price"] and len(subset) == len(df)
    where = "room_type = 'Private room'"
    expected = df[df["room_type"] == "Private room"]
    assert 0 < len(expected) < len(df)
    filtered = ws.data.read("listings", columns=["listing_id", "room_type"], where=where)
    assert sorted(filtered["listing_id"]) == sorted(expected["listing_id"])
    assert set(filtered["room_type"]) == {"Private room"}

    # corrupt every data file outside the Private room partition
    folders = {p.parent.name for p in table_files(ws, "listings")}
    assert len(folders) == 4 and all(f.startswith("room_type=") for f in folders)
    corrupted = 0
    for path in table_files(ws, "listings"):
        if path.parent.name != "room_type=Private%20room":
            path.write_bytes(os.urandom(path.stat().st_size))
            corrupted += 1
    assert corrupted == 3

    again = ws.data.read("listings", columns=["listing_id", "price"], where=where)
    assert sorted(again["listing_id"]) == sorted(expected["listing_id"])
    assert len(ws.data.read("listings", where=where)) == len(expected)
    with pytest.raises(Exception):  # noqa: B017 - any failure to read the garbage files will do
        ws.data.read("listings")
    with pytest.raises(Exception):  # noqa: B017
        ws.data.read("listings", where="room_type = 'Shared room'")


# -- schema rules ---------------------------------------------------------------------------------


def test_append_with_a_different_schema_is_refused_naming_columns_and_types(ws: keel.Workspace,
                                                                           tmp_path: Path) -> None:
    ws.data.ingest(write_listings(clean([1]), tmp_path / "m1.parquet"), "listings")
    other = clean([2]).drop(columns=["beds"])
    other["price"] = "about " + other["price"].astype(str)  # not castable to double
    other["pool"] = True
    path = write_listings(other, tmp_path / "m2.parquet")

    with pytest.raises(SchemaMismatch) as err:
        ws.data.ingest(path, "listings")

    message = str(err.value)
    for fragment in ("beds", "int64", "pool", "bool", "price", "double", "string"):
        assert fragment in message, fragment
    assert [v.version for v in ws.data.history("listings")] == [0]
    with pytest.raises(SchemaMismatch, match="add-columns"):
        ws.data.ingest(write_listings(clean([2]).assign(pool=True), tmp_path / "m2b.parquet"), "listings")


def test_append_with_numbers_as_strings_is_refused(ws: keel.Workspace, tmp_path: Path) -> None:
    ws.data.ingest(write_listings(clean([1]), tmp_path / "m1.parquet"), "listings")
    other = clean([2])
    other["price"] = other["price"].astype(str)
    with pytest.raises(SchemaMismatch, match="price"):
        ws.data.ingest(write_listings(other, tmp_path / "m2.parquet"), "listings")


def test_add_columns_evolves_the_schema(ws: keel.Workspace, tmp_path: Path) -> None:
    m1, m2 = clean([1]), clean([2]).assign(review_score=4.5)
    ws.data.ingest(write_listings(m1, tmp_path / "m1.parquet"), "listings")
    result = ws.data.ingest(write_listings(m2, tmp_path / "m2.parquet"), "listings",
                            schema_change="add-columns", reason="scraper adds scores")

    v = result.version
    assert v.version == 1 and v.schema["review_score"] == "double"
    assert "review_score" not in ws.data.version("listings@0").schema
    data = ws.data.read("listings")
    old = data[data["listing_id"].isin(m1["listing_id"])]
    new = data[data["listing_id"].isin(m2["listing_id"])]
    assert len(old) == len(m1) and old["review_score"].isna().all()
    assert len(new) == len(m2) and (new["review_score"] == 4.5).all()
    assert "review_score" not in ws.data.read("listings@0").columns
    entries = ws.audit.list(target="table:listings")
    changes = [e for e in entries if e.action.startswith("data.schema_change")]
    assert len(changes) == 1
    assert changes[0].target == v.ref and changes[0].actor == ws.user and changes[0].reason == "scraper adds scores"


def test_overwrite_schema_rewrites_with_new_types_as_one_version(ws: keel.Workspace, tmp_path: Path) -> None:
    m1 = clean([1])
    ws.data.ingest(write_listings(m1, tmp_path / "m1.parquet"), "listings")
    m2 = clean([2])
    m2["price"] = m2["price"].map(lambda p: f"EUR {p:.0f}")
    m2["accommodates"] = m2["accommodates"].astype("float64")
    path = write_listings(m2, tmp_path / "m2.parquet")

    with pytest.raises(InvalidInput, match="overwrite"):
        ws.data.ingest(path, "listings", schema_change="overwrite")  # only with mode overwrite
    with pytest.raises(SchemaMismatch):
        ws.data.ingest(path, "listings", mode="overwrite")  # a plain overwrite keeps the schema
    result = ws.data.ingest(path, "listings", mode="overwrite", schema_change="overwrite", reason="prices as text")

    assert [v.version for v in ws.data.history("listings")] == [1, 0]
    v = result.version
    assert v.operation == "overwrite" and v.row_count == len(m2)
    assert v.schema["price"] == "string" and v.schema["accommodates"] == "double"
    latest = ws.data.read("listings")
    assert len(latest) == len(m2) and latest["price"].str.startswith("EUR ").all()
    old = ws.data.read("listings@0")
    assert len(old) == len(m1)
    assert old["price"].dtype == np.float64 and old["accommodates"].dtype == np.int64
    assert ws.data.version("listings@0").schema["price"] == "double"
    changes = [e for e in ws.audit.list() if e.action.startswith("data.schema_change")]
    assert [(e.target, e.reason) for e in changes] == [(v.ref, "prices as text")]


# -- contracts: reject, quarantine, stored, versioned ---------------------------------------------


def test_contract_reject_reports_every_failed_check_and_writes_nothing(any_ws: keel.Workspace,
                                                                      tmp_path: Path) -> None:
    df = dirty([1, 2])
    expected = {k: n for k, n in expected_bad_rows(df).items() if n}
    assert len(expected) == 5
    path = write_listings(df, tmp_path / "m.csv")
    edges_before = edges_count(any_ws)

    with pytest.raises(ValidationFailed) as err:
        any_ws.data.ingest(path, "listings", contract=LISTINGS_CONTRACT)

    report = err.value.report
    assert not report.passed and report.rows == len(df)
    assert report.failed_rows == int(bad_mask(df).sum())
    found = {(f.check, f.column): f for f in report.failures}
    assert {k: f.failed for k, f in found.items()} == expected
    for (check, column), failure in found.items():
        assert failure.examples, (check, column)
        assert all("listing_id" in row for row in failure.examples)
    min_price = [row["price"] for row in found["min", "price"].examples]
    assert all(p < 0 for p in min_price)
    for _check, column in expected:
        assert column in str(err.value)
    assert err.value.details["failures"]
    # nothing written: no table, no version, no lineage, no stored contract
    assert any_ws.data.tables() == []
    with pytest.raises(NotFound):
        any_ws.data.history("listings")
    with pytest.raises(NotFound):
        any_ws.data.read("listings")
    assert edges_count(any_ws) == edges_before
    assert any_ws.data.contract("listings", missing_ok=True) is None
    assert not (any_ws.root / ".keel" / "data" / "listings").exists()


def test_quarantine_commits_good_rows_and_keeps_bad_rows_with_reasons(any_ws: keel.Workspace,
                                                                     tmp_path: Path) -> None:
    df = dirty([1, 2])
    bad = bad_mask(df)
    path = write_listings(df, tmp_path / "m.csv")

    result = any_ws.data.ingest(path, "listings", contract=LISTINGS_CONTRACT, on_bad_rows="quarantine",
                                time_column="listed_at")

    assert result.rows_read == len(df)
    assert result.rows_quarantined == int(bad.sum()) > 0
    assert result.rows_written + result.rows_quarantined == result.rows_read
    assert result.version.row_count == result.rows_written
    assert result.report is not None and result.report.failed_rows == result.rows_quarantined
    good_rows = any_ws.data.read("listings")
    quarantined = any_ws.data.read("listings__quarantine")
    assert len(good_rows) == result.rows_written and len(quarantined) == result.rows_quarantined
    assert len(good_rows) + len(quarantined) == len(df)
    assert not bad_mask(good_rows).any()
    assert quarantined["_keel_reason"].str.len().gt(0).all()
    negative = quarantined[quarantined["price"] < 0]
    assert len(negative) and negative["_keel_reason"].str.contains("price").all()
    far = quarantined[quarantined["longitude"] > 180]
    assert len(far) and far["_keel_reason"].str.contains("longitude").all()
    dups = quarantined[quarantined["_keel_reason"].str.contains("unique")]
    assert len(dups) == int(df["listing_id"].duplicated().sum())
    assert set(dups["listing_id"]) <= set(good_rows["listing_id"])
    q_version = any_ws.data.version(f"listings__quarantine@{result.quarantine_version}")
    assert upstream_refs(any_ws, result.version.ref).get(q_version.ref) == "quarantine_of"


def test_stored_contract_is_applied_on_the_next_ingest(any_ws: keel.Workspace, tmp_path: Path) -> None:
    first = any_ws.data.ingest(write_listings(dirty([1]), tmp_path / "m1.csv"), "listings",
                               contract=LISTINGS_CONTRACT, on_bad_rows="quarantine")
    assert first.version.contract_version == 1
    m2 = dirty([2])
    path = write_listings(m2, tmp_path / "m2.parquet")

    with pytest.raises(ValidationFailed):  # reject is the default, with the stored contract
        any_ws.data.ingest(path, "listings")
    assert [v.version for v in any_ws.data.history("listings")] == [0]

    second = any_ws.data.ingest(path, "listings", on_bad_rows="quarantine")
    assert second.version.contract_version == 1
    assert second.rows_quarantined == int(bad_mask(m2).sum()) > 0
    assert second.rows_written + second.rows_quarantined == second.rows_read == len(m2)
    assert len(any_ws.data.read("listings__quarantine")) == first.rows_quarantined + second.rows_quarantined
    assert upstream_refs(any_ws, second.version.ref).get("contract:listings@1") == "validated_by"


def test_contracts_are_versioned_per_table(ws: keel.Workspace) -> None:
    doc = yaml.safe_load(LISTINGS_CONTRACT.read_text())
    assert ws.data.set_contract("listings", LISTINGS_CONTRACT) == 1
    assert ws.data.set_contract("listings", LISTINGS_CONTRACT) == 1  # unchanged: same version
    assert ws.data.set_contract("listings", keel.Contract.from_dict(doc)) == 1  # same, as an object
    doc["columns"]["price"]["max"] = 5000
    assert ws.data.set_contract("listings", doc) == 2
    assert ws.data.set_contract("listings", doc) == 2
    assert ws.data.set_contract("other", doc) == 1  # numbered per table

    assert ws.data.contract("listings", 1).columns["price"].max == 100000
    assert ws.data.contract("listings", 2).columns["price"].max == 5000
    assert ws.data.contract("listings") == ws.data.contract("listings", 2)
    assert ws.data.contract("listings").target == "price" and ws.data.contract("listings").key == ["listing_id"]
    sets = [e.target for e in ws.audit.list(action="data.contract.set")]
    assert sorted(sets) == ["contract:listings@1", "contract:listings@2", "contract:other@1"]
    with pytest.raises(NotFound):
        ws.data.contract("listings", 3)


# -- profiles and validation ----------------------------------------------------------------------


def test_profile_is_stored_per_version(ws: keel.Workspace, tmp_path: Path) -> None:
    m1 = clean([1])
    ws.data.ingest(write_listings(m1, tmp_path / "m1.parquet"), "listings")

    prof = ws.data.profile("listings@0")
    assert prof["rows"] == len(m1)
    assert set(prof["columns"]) == set(COLUMNS)
    price = prof["columns"]["price"]
    for key in ("count", "nulls", "distinct", "min", "max", "mean", "std", "quantiles"):
        assert key in price, key
    assert price["count"] == len(m1) and price["nulls"] == 0
    assert price["min"] == m1["price"].min() and price["max"] == m1["price"].max()
    assert price["mean"] == pytest.approx(m1["price"].mean())
    assert price["std"] == pytest.approx(m1["price"].std())
    qs = [price["quantiles"][k] for k in sorted(price["quantiles"], key=float)]
    assert len(qs) >= 3 and qs == sorted(qs) and price["min"] <= qs[0] and qs[-1] <= price["max"]
    assert price["quantiles"]["0.5"] == pytest.approx(m1["price"].median(), rel=0.15)
    assert price["distinct"] == pytest.approx(m1["price"].nunique(), rel=0.1)
    reviews = prof["columns"]["first_review"]
    assert reviews["nulls"] == int(m1["first_review"].isna().sum()) > 0
    assert reviews["count"] == len(m1) - reviews["nulls"]
    room = prof["columns"]["room_type"]
    assert room["distinct"] == m1["room_type"].nunique()
    top = {t["value"]: t["count"] for t in room["top_values"]}
    assert top == m1["room_type"].value_counts().to_dict()
    assert room["top_values"][0]["value"] == m1["room_type"].value_counts().index[0]

    m2 = clean([2])
    ws.data.ingest(write_listings(m2, tmp_path / "m2.parquet"), "listings")
    prof1 = ws.data.profile("listings@1")
    assert prof1["rows"] == len(m1) + len(m2)
    assert prof1["columns"]["price"]["mean"] == pytest.approx(pd.concat([m1, m2])["price"].mean())
    assert ws.data.profile("listings@0") == prof  # each version keeps its own profile
    with ws.db.read() as conn:
        stored = dict(conn.execute(sa.select(schema.profiles.c.version, schema.profiles.c.profile)
                                   .where(schema.profiles.c.table_name == "listings")).all())
    assert set(stored) == {0, 1}
    assert stored[0]["rows"] == len(m1) and stored[1]["rows"] == len(m1) + len(m2)


def test_profile_of_infinite_values_is_stored(any_ws: keel.Workspace) -> None:
    """±inf are counted apart (as NaN is) and kept out of the statistics, so the profile is valid JSON."""
    data = pa.table({"id": [1, 2, 3], "x": pa.array([1.0, float("inf"), -float("inf")])})
    result = any_ws.data.ingest(data, "extremes")
    assert result.version.version == 0 and result.rows_written == 3
    prof = any_ws.data.profile("extremes")
    x = prof["columns"]["x"]
    assert prof["rows"] == 3 and (x["count"], x["inf"], x["nan"], x["nulls"]) == (1, 2, 0, 0)
    assert x["min"] == x["max"] == 1.0
    assert [v.version for v in any_ws.data.history("extremes")] == [0]


def test_validate_rechecks_a_stored_version(ws: keel.Workspace, tmp_path: Path) -> None:
    result = ws.data.ingest(write_listings(dirty([1]), tmp_path / "m1.csv"), "listings",
                            contract=LISTINGS_CONTRACT, on_bad_rows="quarantine")

    report = ws.data.validate("listings@0")
    assert report.passed and report.rows == result.rows_written and report.contract_version == 1

    strict = yaml.safe_load(LISTINGS_CONTRACT.read_text())
    strict["columns"]["price"]["max"] = 100
    report = ws.data.validate("listings@0", strict)
    expensive = int((ws.data.read("listings@0")["price"] > 100).sum())
    assert expensive > 0
    assert not report.passed and report.failed_rows == expensive
    assert [(f.check, f.column, f.failed) for f in report.failures] == [("max", "price", expensive)]
    assert all(row["price"] > 100 for row in report.failures[0].examples)

    # a new contract version does not change what a version was validated against
    ws.data.set_contract("listings", strict)
    again = ws.data.validate("listings@0")
    assert again.passed and again.contract_version == 1


# -- splits ---------------------------------------------------------------------------------------


def test_split_is_stored_reproducible_and_in_lineage(any_ws: keel.Workspace, tmp_path: Path) -> None:
    df = clean([1, 2])
    any_ws.data.ingest(write_listings(df, tmp_path / "m.parquet"), "listings", time_column="listed_at")

    one = any_ws.data.split("listings@0", target="price", time_column="listed_at", name="by-time")
    two = any_ws.data.split("listings@0", target="price", time_column="listed_at", name="by-time")

    assert (one.version, two.version) == (1, 2)
    assert one.ref == "split:by-time@1" and one.source_ref == "table:listings@0" and one.method == "time"
    parts = {}
    for part in ("train", "validation", "test"):
        a = any_ws.data.read_split(one.ref, part)
        b = any_ws.data.read_split(two.ref, part)
        pd.testing.assert_frame_equal(a.sort_values("listing_id").reset_index(drop=True),
                                      b.sort_values("listing_id").reset_index(drop=True))
        assert len(a) == one.counts[part] > 0
        parts[part] = a
    assert sum(len(p) for p in parts.values()) == len(df)
    assert parts["train"]["listed_at"].max() < parts["validation"]["listed_at"].min()
    assert parts["validation"]["listed_at"].max() < parts["test"]["listed_at"].min()
    assert any_ws.data.split_info("by-time").version == 2
    assert any_ws.data.split_info("by-time@1") == one
    # stored, and reproducible from what is stored
    info = any_ws.data.split_info(one.ref)
    assert info.params["fractions"] == [0.7, 0.15, 0.15] and "seed" in info.params
    downstream = downstream_refs(any_ws, "table:listings@0")
    assert downstream.get(one.ref) == "split_into" and downstream.get(two.ref) == "split_into"
    assert upstream_refs(any_ws, one.ref) == {"table:listings@0": "split_into"}

    # random (stratified) splits are reproducible from the recorded seed
    r1 = any_ws.data.split("listings", target="price", name="random", seed=7)
    r2 = any_ws.data.split("listings", target="price", name="random", seed=r1.params["seed"])
    assert r1.method == "stratified"
    for part in ("train", "validation", "test"):
        assert sorted(any_ws.data.read_split(r1.ref, part)["listing_id"]) == \
            sorted(any_ws.data.read_split(r2.ref, part)["listing_id"])


# -- retention ------------------------------------------------------------------------------------


@pytest.fixture
def four_overwrites(ws: keel.Workspace, tmp_path: Path) -> keel.Workspace:
    """Versions 0..3 of ``listings``, each an overwrite, and a split made from version 1."""
    for m in range(4):
        ws.data.ingest(write_listings(clean([m + 1]), tmp_path / f"m{m}.parquet"), "listings", mode="overwrite")
    ws.data.split("listings@1", target="price", time_column="listed_at", name="v1-split")
    return ws


def test_vacuum_keeps_referenced_and_latest_versions(four_overwrites: keel.Workspace) -> None:
    ws = four_overwrites
    data_dir = ws.root / ".keel" / "data" / "listings"
    files = {v: {Path(u).name for u in ws.tables.files("listings", v)} for v in range(4)}
    assert all(files[v] for v in range(4)) and len(set().union(*files.values())) == 4
    before = {p.name for p in table_files(ws, "listings")}
    train = ws.data.read_split("split:v1-split@1", "train")

    history_before = ws.data.history("listings")
    log_before = sorted(p.name for p in (data_dir / "_delta_log").iterdir())
    dry = ws.data.vacuum("listings", retention_hours=0, dry_run=True)
    assert dry.dry_run and {Path(f).name for f in dry.removed_files} == files[0] | files[2]
    assert set(dry.kept_versions) == {1, 3}
    # a dry run changes nothing: files, Delta log, versions, audit
    assert {p.name for p in table_files(ws, "listings")} == before
    assert sorted(p.name for p in (data_dir / "_delta_log").iterdir()) == log_before
    assert ws.data.history("listings") == history_before
    assert ws.audit.list(action="data.vacuum") == []

    result = ws.data.vacuum("listings", retention_hours=0, reason="disk space")

    assert {Path(f).name for f in result.removed_files} == files[0] | files[2]
    assert set(result.kept_versions) == {1, 3}
    assert "lineage" in result.kept_versions[1] and "latest" in result.kept_versions[3]
    assert result.vacuumed_versions == [0, 2]
    left = {p.name for p in table_files(ws, "listings")}
    assert left == files[1] | files[3]
    assert (data_dir / "_delta_log").is_dir()
    assert len(ws.data.read("listings@1")) == ROWS and len(ws.data.read("listings@3")) == ROWS
    pd.testing.assert_frame_equal(ws.data.read_split("split:v1-split@1", "train"), train)
    for gone in (0, 2):
        with pytest.raises(NotFound, match="vacuum"):
            ws.data.read(f"listings@{gone}")
    history = {v.version: v for v in ws.data.history("listings")}
    assert history[0].vacuumed_at is not None and history[2].vacuumed_at is not None
    assert history[1].vacuumed_at is None and history[3].vacuumed_at is None
    (entry,) = ws.audit.list(action="data.vacuum")
    assert entry.target == "table:listings" and entry.actor == ws.user and entry.reason == "disk space"
    assert {int(k): v for k, v in entry.details["kept"].items()} == result.kept_versions


def test_vacuum_marks_unreadable_only_versions_that_lost_files(ws: keel.Workspace, tmp_path: Path) -> None:
    """Appends share files with later versions: only a version missing a file becomes unreadable."""
    for m, mode in enumerate(("overwrite", "append", "overwrite", "append")):
        ws.data.ingest(write_listings(clean([m + 1]), tmp_path / f"m{m}.parquet"), "listings", mode=mode)
    result = ws.data.vacuum("listings", retention_hours=0)
    assert set(result.kept_versions) == {3}
    assert result.vacuumed_versions == [0, 1]
    assert len(ws.data.read("listings@2")) == ROWS  # its one file is part of version 3
    assert len(ws.data.read("listings@3")) == 2 * ROWS
    for gone in (0, 1):
        with pytest.raises(NotFound, match="vacuum"):
            ws.data.read(f"listings@{gone}")
    assert ws.data.version("listings@2").vacuumed_at is None


def test_vacuum_of_an_append_only_table_keeps_every_version_readable(ws: keel.Workspace) -> None:
    for m in range(3):
        ws.data.ingest(clean([m + 1]), "listings")
    result = ws.data.vacuum("listings", retention_hours=0)
    assert result.removed_files == [] and result.vacuumed_versions == []
    for n in range(3):
        assert len(ws.data.read(f"listings@{n}")) == (n + 1) * ROWS


def test_vacuum_commits_are_attributed_to_the_user(four_overwrites: keel.Workspace) -> None:
    """deltalake records a vacuum as commits of its own (VACUUM START/END): they are the user's, not "unknown"."""
    ws = four_overwrites
    ws.data.vacuum("listings", retention_hours=0)
    history = ws.data.history("listings")
    assert all(v.created_by == ws.user for v in history), [(v.version, v.created_by, v.operation) for v in history]
    pd.testing.assert_frame_equal(ws.data.read("listings"), ws.data.read("listings@3"))


def test_read_arrow_returns_arrow(ws: keel.Workspace, tmp_path: Path) -> None:
    ws.data.ingest(write_listings(clean([1]), tmp_path / "m1.parquet"), "listings")
    table = ws.data.read_arrow("listings@0", columns=["listing_id", "price"])
    assert isinstance(table, pa.Table) and table.column_names == ["listing_id", "price"]
    assert table.num_rows == ROWS
