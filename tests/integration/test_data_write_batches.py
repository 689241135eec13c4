"""``ws.data.write_batches``: a stream of batches committed as one table version, one batch in memory at a
time — how keel writes its own large results (training sets)."""

from __future__ import annotations

import pyarrow as pa
import pytest

import keel
from keel.errors import InvalidInput, SchemaMismatch


def batch(start: int, n: int) -> pa.Table:
    return pa.table({"id": pa.array(range(start, start + n), pa.int64()),
                     "x": pa.array([float(i) / 3 for i in range(n)], pa.float64()),
                     "city": pa.array(["Lisbon", "Porto"] * (n // 2) + ["Faro"] * (n % 2), pa.large_string())})


def test_a_stream_is_one_version_with_the_hash_an_ingest_of_the_same_rows_gets(ws: keel.Workspace) -> None:
    parts = [batch(0, 10), batch(10, 5), batch(15, 0), batch(15, 20)]
    version = ws.data.write_batches(iter(parts), "streamed", mode="overwrite", key=["id"])
    assert (version.version, version.row_count, version.rows_added) == (0, 35, 35)
    ingested = ws.data.ingest(pa.concat_tables(parts), "ingested").version
    assert version.content_hash == ingested.content_hash  # the same rows, whichever way they came
    stored = ws.data.read_arrow("streamed")
    assert stored.num_rows == 35 and stored.schema.field("city").type == pa.string()  # strings unified
    assert ws.data.read_arrow("streamed", with_row_ids=True)["_keel_row_id"].unique().to_pylist() == list(range(35))
    assert ws.data.catalog.dataset("streamed").key_columns == ["id"]
    again = ws.data.write_batches([batch(100, 4)], "streamed", mode="append")
    assert (again.version, again.row_count) == (1, 39)


def test_a_bad_stream_writes_nothing(ws: keel.Workspace) -> None:
    ws.data.write_batches([batch(0, 4)], "t", mode="overwrite")
    other = pa.table({"id": pa.array([1], pa.int64()), "y": [1.0]})
    with pytest.raises(InvalidInput, match="schema"):
        ws.data.write_batches([batch(0, 4), other], "t", mode="append")
    with pytest.raises(InvalidInput, match="no rows"):
        ws.data.write_batches([], "t", mode="append")
    with pytest.raises(InvalidInput, match="reserved"):
        ws.data.write_batches([batch(0, 2).append_column("_keel_x", pa.array([1, 2]))], "t", mode="append")
    with pytest.raises(SchemaMismatch, match="schema differs"):  # a different schema needs schema_change
        ws.data.write_batches([other], "t", mode="overwrite")
    assert [v.version for v in ws.data.history("t")] == [0] and ws.data.read_arrow("t").num_rows == 4
