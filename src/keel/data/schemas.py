"""Schema rules for writes: what an append may change, said in terms the user can act on."""

from __future__ import annotations

from typing import Literal

import pyarrow as pa

from keel.data.arrow_types import schema_dict
from keel.data.model import ROW_ID
from keel.errors import InvalidInput, SchemaMismatch

__all__ = ["SchemaChange", "align_to_table", "reserved_columns"]

SchemaChange = Literal["add-columns", "overwrite"]


def reserved_columns(table: pa.Table) -> None:
    """Columns starting with ``_keel_`` are keel's own (row ids, quarantine reasons)."""
    taken = [c for c in table.column_names if c.startswith("_keel_")]
    if taken:
        raise InvalidInput(f"column name(s) {', '.join(taken)} are reserved by keel (prefix _keel_); rename them")


def align_to_table(
    data: pa.Table, existing: dict[str, str] | None, *, mode: str, schema_change: SchemaChange | None,
    table: str,
) -> tuple[pa.Table, Literal["merge", "overwrite"] | None]:
    """Make ``data`` fit the table's schema, or refuse naming every column that differs.

    Returns the data (cast and ordered like the table) and the Delta schema mode to write with.
    """
    if schema_change == "overwrite":
        if mode != "overwrite":
            raise InvalidInput("--schema-change overwrite rewrites the table; use it with --mode overwrite")
        return data, "overwrite"
    if existing is None or (mode == "overwrite" and schema_dict(data.schema) == existing):
        return data, None
    incoming = schema_dict(data.schema)
    missing = [c for c in existing if c not in incoming]
    new = [c for c in incoming if c not in existing]
    changed = []
    for name in existing:
        if name in incoming and incoming[name] != existing[name]:
            widened = _widen(data[name], existing[name])
            if widened is None:
                changed.append(f"{name} {existing[name]} → {incoming[name]}")
            else:
                data = data.set_column(data.column_names.index(name), name, widened)
    allowed_new = schema_change == "add-columns"
    if missing or changed or (new and not allowed_new):
        parts = []
        if missing:
            parts.append("missing: " + ", ".join(f"{c} ({existing[c]})" for c in missing))
        if new:
            parts.append("new: " + ", ".join(f"{c} ({incoming[c]})" for c in new))
        if changed:
            parts.append("changed: " + "; ".join(changed))
        hint = ("pass --schema-change add-columns to add the new columns" if new and not missing and not changed
                else "pass --mode overwrite --schema-change overwrite to rewrite the table with the new schema")
        verb = "overwrite of" if mode == "overwrite" else "append to"
        raise SchemaMismatch(
            f"{verb} {table!r} refused: the schema differs ({'; '.join(parts)}); {hint}",
            details={"missing": missing, "new": new, "changed": changed},
        )
    order = [c for c in existing if c != ROW_ID] + new
    return data.select(order), "merge" if new else None


_NUMBERS = {"int8": pa.int8(), "int16": pa.int16(), "int32": pa.int32(), "int64": pa.int64(),
            "float": pa.float32(), "double": pa.float64()}


def _widen(column: pa.ChunkedArray, existing: str) -> pa.ChunkedArray | None:
    """Accept only changes that lose nothing and mean the same: a narrower number, or an all-null column.

    Text that looks like numbers is not the same column: an upstream change like that is refused.
    """
    target = _NUMBERS.get(existing)
    kind = column.type
    if pa.types.is_null(kind) and target is not None:
        return column.cast(target)
    numeric = pa.types.is_integer(kind) or pa.types.is_floating(kind)
    if target is None or not numeric:
        return None
    try:
        return column.cast(target, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
