"""Reading CSV, Parquet and JSON Lines into Arrow, hashing the file as it is read.

Every way an input file can be wrong (missing, empty, ragged, undecodable) becomes one
UnreadableFile with the file name and what to do, never a parser traceback.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from keel.errors import InvalidInput, UnreadableFile

__all__ = ["FORMATS", "SourceFile", "read_source_file", "write_file"]

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl",
           ".json": "jsonl"}


@dataclass(frozen=True, slots=True)
class SourceFile:
    name: str
    sha256: str
    table: pa.Table


def detect_format(path: Path, fmt: str | None = None) -> str:
    if fmt is not None:
        if fmt not in {"csv", "parquet", "jsonl"}:
            raise InvalidInput(f"unknown format {fmt!r}; use csv, parquet or jsonl")
        return fmt
    found = FORMATS.get(path.suffix.lower())
    if found is None:
        raise InvalidInput(f"cannot tell the format of {path.name} from its extension; pass --format csv|parquet|jsonl")
    return found


def read_source_file(path: str | Path, fmt: str | None = None) -> SourceFile:
    """Read an input file whole into Arrow; raise UnreadableFile for every kind of bad file."""
    path = Path(path)
    if not path.exists():
        raise UnreadableFile(f"file {path} does not exist")
    if not path.is_file():
        raise UnreadableFile(f"{path} is not a file")
    fmt = detect_format(path, fmt)
    if path.stat().st_size == 0:
        raise UnreadableFile(f"file {path} is empty; nothing to ingest")
    try:
        table = _READERS[fmt](path)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError, UnicodeDecodeError) as exc:
        raise UnreadableFile(f"cannot read {path.name} as {fmt}: {_first_line(exc)}") from None
    if table.num_rows == 0:
        raise UnreadableFile(f"file {path} has a header but no rows; nothing to ingest")
    return SourceFile(path.name, file_sha256(path), table)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_file(table: pa.Table, path: str | Path, fmt: str | None = None) -> Path:
    """Export an Arrow table as CSV, Parquet or JSON Lines (by extension unless ``fmt``)."""
    path = Path(path)
    fmt = detect_format(path, fmt)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        pq.write_table(table, path)
    elif fmt == "csv":
        pacsv.write_csv(table, path)
    else:
        table.to_pandas().to_json(path, orient="records", lines=True, date_format="iso", date_unit="us")
    return path


def _read_csv(path: Path) -> pa.Table:
    table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(timestamp_parsers=[pacsv.ISO8601]))
    undecodable = [f.name for f in table.schema if pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type)]
    if undecodable:  # Arrow falls back to bytes for text that is not UTF-8
        raise pa.ArrowInvalid(f"text in column(s) {', '.join(undecodable)} is not UTF-8; re-encode the file as UTF-8")
    return table


def _read_jsonl(path: Path) -> pa.Table:
    return pajson.read_json(path)


_READERS = {"csv": _read_csv, "parquet": pq.read_table, "jsonl": _read_jsonl}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
