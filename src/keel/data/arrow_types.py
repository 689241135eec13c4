"""Arrow types keel speaks: contract dtype names, safe casts, and UTC time columns.

Times are timezone-aware UTC everywhere. A naive timestamp in input data is taken as UTC and
the conversion is recorded by the caller; a date becomes midnight UTC.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from keel.errors import InvalidInput

__all__ = ["DTYPES", "NUMERIC_DTYPES", "cast_column", "schema_dict", "to_utc_timestamp"]

UTC_TS = pa.timestamp("us", tz="UTC")
DTYPES: dict[str, pa.DataType] = {
    "int64": pa.int64(),
    "int32": pa.int32(),
    "float64": pa.float64(),
    "float32": pa.float32(),
    "string": pa.string(),
    "bool": pa.bool_(),
    "timestamp": UTC_TS,
    "date": pa.date32(),
}
NUMERIC_DTYPES = ("int64", "int32", "float64", "float32")


def cast_column(column: pa.ChunkedArray, dtype: str) -> pa.ChunkedArray:
    """Cast safely to a contract dtype (no silent truncation); raises ArrowInvalid when impossible."""
    if dtype == "timestamp":
        return to_utc_timestamp(column)
    target = DTYPES[dtype]
    if column.type == target:
        return column
    if pa.types.is_large_string(column.type) and target == pa.string():
        return column.cast(target)
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    return column.cast(target, safe=True)


def to_utc_timestamp(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """A timestamp[us, UTC] column from timestamps (any unit or zone), dates or ISO strings."""
    kind = column.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        column = _parse_iso(column)
        kind = column.type
    if pa.types.is_date(kind):
        column = column.cast(pa.timestamp("us"))
        kind = column.type
    if not pa.types.is_timestamp(kind):
        raise pa.ArrowInvalid(f"cannot read {kind} as a UTC timestamp")
    if kind.tz is None:
        column = pc.assume_timezone(column, "UTC")
    return column.cast(UTC_TS)


def _parse_iso(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """ISO 8601 text (fractions, 'Z' or offsets, or none) → timestamps; Arrow's own ISO parser."""
    for target in (UTC_TS, pa.timestamp("us"), pa.date32()):
        try:
            return column.cast(target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
    raise pa.ArrowInvalid("values are not ISO 8601 timestamps (e.g. 2024-05-01T12:00:00Z), or mix zoned and naive ones")


def normalize_time_column(table: pa.Table, column: str | None) -> pa.Table:
    """Make ``column`` a UTC timestamp column, or say clearly why it cannot be one."""
    if column is None:
        return table
    if column not in table.column_names:
        raise InvalidInput(f"time column {column!r} is not in the data; columns: {', '.join(table.column_names)}")
    try:
        converted = to_utc_timestamp(table[column])
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise InvalidInput(f"time column {column!r} is not a timestamp: {str(exc).splitlines()[0]}") from None
    return table.set_column(table.column_names.index(column), column, converted)


def schema_dict(schema: pa.Schema, exclude: tuple[str, ...] = ()) -> dict[str, str]:
    """The schema as {column: arrow type text}, the form stored in the metadata store."""
    return {f.name: str(f.type) for f in schema if f.name not in exclude}


def unify_strings(table: pa.Table) -> pa.Table:
    """large_string/dictionary columns become plain strings, so equal data has equal schemas."""
    fields = []
    changed = False
    for field in table.schema:
        kind = field.type
        if pa.types.is_large_string(kind) or (pa.types.is_dictionary(kind) and pa.types.is_string(kind.value_type)):
            fields.append(field.with_type(pa.string()))
            changed = True
        elif pa.types.is_timestamp(kind) and kind.tz is not None and (kind.unit != "us" or kind.tz != "UTC"):
            fields.append(field.with_type(UTC_TS))
            changed = True
        else:
            fields.append(field)
    return table.cast(pa.schema(fields)) if changed else table
