"""``ws.data`` over HTTP: tables, versions, profiles, splits; ingest streams the file to the server.

A remote ``read`` goes through the rows endpoint (at most 10,000 rows a request) and rebuilds the frame
with the column types the table version records, so it equals the embedded ``read`` for tables that
fit; a bigger result is refused with what to do rather than silently cut short.
"""

from __future__ import annotations

import re
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from keel.data.contracts import Contract
from keel.data.model import IngestResult, SplitInfo, TableInfo, TableVersion
from keel.errors import InvalidInput
from keel.refs import Ref
from keel.remote.client import Client, join
from keel.remote.decode import decode, decode_list

__all__ = ["MAX_ROWS", "RemoteDataService"]

MAX_ROWS = 10_000  # the server's limit on one rows request
_TIMESTAMP = re.compile(r"timestamp\[(s|ms|us|ns)(?:, tz=(.+))?\]")
_UNSUPPORTED = ("partition_by", "key", "contract", "schema_change", "format")


class RemoteDataService:
    """The data capability of a keel server: the embedded ``DataService`` methods, over HTTP."""

    def __init__(self, client: Client) -> None:
        self._client = client

    # -- writing ----------------------------------------------------------------------------------------

    def ingest(self, source: str | Path | pd.DataFrame | pa.Table, table: str, *, mode: str = "append",
               time_column: str | None = None, on_bad_rows: str = "reject", reason: str | None = None,
               **options: Any) -> IngestResult:
        """Validate and commit ``source`` (a CSV/Parquet/JSON Lines file, streamed; or a frame, sent as Parquet)
        as one new version of ``table``, against the table's stored contract."""
        given = sorted(k for k, v in options.items() if v is not None)
        if unknown := [k for k in given if k not in _UNSUPPORTED]:
            raise TypeError(f"ingest() got unexpected keyword argument(s) {', '.join(unknown)}")
        if given:
            raise InvalidInput(f"{', '.join(given)} cannot be set through a server yet; set the table up "
                               "embedded (or with `keel data` on the server's host), then ingest remotely")
        params = {"mode": mode, "on_bad_rows": on_bad_rows, "time_column": time_column, "reason": reason}
        route = join("tables", table, "ingest")
        if isinstance(source, pd.DataFrame | pa.Table):
            data = pa.Table.from_pandas(source, preserve_index=False) if isinstance(source, pd.DataFrame) else source
            if data.num_rows == 0:
                raise InvalidInput("the data has no rows; nothing to ingest")
            with tempfile.TemporaryDirectory(prefix="keel-ingest-") as tmp:
                path = Path(tmp) / f"{type(source).__name__.lower()}.parquet"
                import pyarrow.parquet as pq

                pq.write_table(data, path)
                answer = self._client.upload("POST", route, path, filename=path.name, **params)
        elif isinstance(source, str | Path):
            path = Path(source)
            if not path.is_file():
                raise InvalidInput(f"{path} does not exist or is not a file")
            answer = self._client.upload("POST", route, path, filename=path.name, **params)
        else:
            raise InvalidInput(f"cannot ingest a {type(source).__name__}; pass a file path, a DataFrame or an Arrow "
                               "table")
        return decode(IngestResult, answer)

    def split(self, ref: str | Ref, *, target: str, time_column: str | None = None, group: str | None = None,
              fractions: str | tuple[float, ...] = (0.7, 0.15, 0.15), gap: timedelta | str | None = None,
              name: str | None = None, seed: int = 42, dedupe: bool = False, allow_duplicates: bool = False,
              reason: str | None = None, ignore_for_duplicates: list[str] | None = None) -> SplitInfo:
        """Split a table version into train/validation/test on the server, without leakage."""
        if isinstance(gap, timedelta):
            gap = f"{gap.total_seconds()}s"
        body = {"table": str(ref), "target": target, "time_column": time_column, "group": group,
                "fractions": fractions if isinstance(fractions, str) else ",".join(str(f) for f in fractions),
                "gap": gap, "name": name, "seed": seed, "dedupe": dedupe, "allow_duplicates": allow_duplicates,
                "reason": reason, "ignore_for_duplicates": ignore_for_duplicates}
        return decode(SplitInfo, self._client.post("/splits", body))

    # -- reading ----------------------------------------------------------------------------------------

    def tables(self) -> list[TableInfo]:
        return decode_list(TableInfo, self._client.get("/tables"))

    def history(self, name: str) -> list[TableVersion]:
        """Versions of ``name``, newest first."""
        return decode_list(TableVersion, self._client.get(join("tables", name, "history")))

    def version(self, ref: str | Ref) -> TableVersion:
        return decode(TableVersion, self._client.get(join("tables", str(ref), "version")))

    def contract(self, table: str) -> Contract | None:
        found = self._client.get(join("tables", table, "contract"))
        return None if found is None else Contract.from_dict(found)

    def profile(self, ref: str | Ref) -> dict[str, Any]:
        return self._client.get(join("tables", str(ref), "profile"))

    def split_info(self, ref: str | Ref) -> SplitInfo:
        return decode(SplitInfo, self._client.get(join("splits", str(ref))))

    def read_arrow(self, ref: str | Ref, *, columns: list[str] | None = None, where: str | None = None) -> pa.Table:
        """A version's rows (at most 10,000 through a server), with the column types the version records."""
        version = self.version(ref)
        found = self._client.get(join("tables", version.ref.removeprefix("table:"), "rows"),
                                 columns=",".join(columns) if columns else None, where=where, limit=MAX_ROWS)
        if found["rows"] > len(found["records"]):
            raise InvalidInput(f"{version.ref} has {found['rows']:,} matching rows; a read through the server "
                               f"returns at most {MAX_ROWS:,}. Narrow it with where= or columns=, or read it in an "
                               "embedded workspace")
        return _typed(found["records"], found["columns"], version.schema)

    def read(self, ref: str | Ref, *, columns: list[str] | None = None, where: str | None = None) -> pd.DataFrame:
        return self.read_arrow(ref, columns=columns, where=where).to_pandas()


def _typed(records: list[dict[str, Any]], columns: list[str], schema: dict[str, str]) -> pa.Table:
    """Records from JSON as an Arrow table, each column cast back to the type the table version records."""
    if not records:
        return pa.table({c: pa.array([], type=_arrow_type(schema.get(c)) or pa.null()) for c in columns})
    table = pa.Table.from_pylist(records).select(columns)
    arrays = []
    for name, column in zip(table.column_names, table.columns, strict=True):
        wanted = _arrow_type(schema.get(name))
        if wanted is not None and column.type != wanted:
            column = pc.cast(column, wanted)
        arrays.append(column)
    return pa.table(arrays, names=table.column_names)


def _arrow_type(text: str | None) -> pa.DataType | None:
    """The Arrow type of a schema entry (``int64``, ``timestamp[us, tz=UTC]``); None: keep what JSON gave."""
    if not text:
        return None
    if match := _TIMESTAMP.fullmatch(text):
        return pa.timestamp(match.group(1), tz=match.group(2))
    try:
        return pa.type_for_alias(text)
    except ValueError:
        return None
