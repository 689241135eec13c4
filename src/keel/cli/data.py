"""``keel data``: ingest, history, show, export, profile, validate, contracts, split, vacuum."""

from __future__ import annotations

import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import typer

from keel.cli.context import console, print_json, print_report, print_table, split_list, state
from keel.data.contracts import load_contract
from keel.data.model import IngestResult
from keel.data.readers import write_file
from keel.errors import InvalidInput

app = typer.Typer(no_args_is_help=True, help="Versioned tables: ingest, time travel, contracts, profiles, splits.")
contract_app = typer.Typer(no_args_is_help=True, help="Data contracts, versioned per table.")
app.add_typer(contract_app, name="contract")


@app.command()
def ingest(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="CSV, Parquet or JSON Lines file."),
    table: str = typer.Option(..., "--table", "-t", help="Table to write."),
    mode: str = typer.Option("append", help="append | overwrite"),
    partition_by: list[str] = typer.Option(None, "--partition-by", help="Partition column(s) (first write)."),
    time_column: str = typer.Option(None, "--time-column", help="Event-time column, stored as UTC."),
    key: list[str] = typer.Option(None, "--key", help="Key column(s)."),
    contract: Path = typer.Option(None, "--contract", help="Contract YAML to validate against (and store)."),
    on_bad_rows: str = typer.Option("reject", "--on-bad-rows", help="reject | quarantine"),
    schema_change: str = typer.Option(None, "--schema-change", help="add-columns | overwrite"),
    fmt: str = typer.Option(None, "--format", help="csv | parquet | jsonl (default: by extension)"),
    reason: str = typer.Option(None, "--reason", help="Why (recorded in the audit log for overrides)."),
) -> None:
    """Read FILE, validate it, and commit it as one new version of TABLE."""
    ws = state(ctx).workspace()
    result = ws.data.ingest(
        file, table, mode=mode, partition_by=split_list(partition_by), time_column=time_column,
        key=split_list(key), contract=contract, on_bad_rows=on_bad_rows, schema_change=schema_change,
        format=fmt, reason=reason,
    )
    _print_ingest(result)


@app.command()
def tables(ctx: typer.Context) -> None:
    """List the tables and their latest versions."""
    rows = [(t.name, t.latest_version, ",".join(t.partition_by), t.time_column, ",".join(t.key_columns))
            for t in state(ctx).workspace().data.tables()]
    print_table("tables", ["name", "latest", "partitioned by", "time column", "key"], rows)


@app.command()
def history(ctx: typer.Context, name: str = typer.Argument(..., help="Table name.")) -> None:
    """Every version of a table, newest first."""
    versions = state(ctx).workspace().data.history(name)
    print_table(f"history of {name}", ["version", "committed (UTC)", "operation", "rows", "added", "by", "source",
                                       "contract", "hash"],
                [(v.version, f"{v.committed_at:%Y-%m-%d %H:%M:%S}", v.operation + (" (vacuumed)" if v.vacuumed_at
                 else ""), v.row_count, v.rows_added, v.created_by, v.source_name, v.contract_version,
                  v.content_hash[:12]) for v in versions])


@app.command()
def show(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="NAME, NAME@VERSION or NAME@TIMESTAMP"),
    limit: int = typer.Option(20, "--limit", "-n", min=0, help="Rows to show (0 = all)."),
    fmt: str = typer.Option("table", "--format", help="table | csv | json"),
    columns: list[str] = typer.Option(None, "--columns", "-c", help="Only these columns."),
    where: str = typer.Option(None, "--where", help="SQL filter, e.g. \"room_type = 'Private room'\"."),
    part: str = typer.Option(None, "--part", help="With a split ref: train | validation | test."),
) -> None:
    """Show the rows of a table version (time travel by version or timestamp) or of a split part."""
    if fmt not in ("table", "csv", "json"):
        raise InvalidInput(f"invalid --format {fmt!r}; use table, csv or json")
    data = _read(ctx, ref, part, split_list(columns), where)
    shown = data.slice(0, limit) if limit else data
    if fmt == "csv":
        pacsv.write_csv(shown, sys.stdout.buffer)
    elif fmt == "json":
        print_json(shown.to_pylist())
    else:
        print_table(f"{ref}: {shown.num_rows} of {data.num_rows} rows", shown.column_names,
                    zip(*(c.to_pylist() for c in shown.columns), strict=True))


@app.command()
def export(ctx: typer.Context, ref: str = typer.Argument(...), file: Path = typer.Argument(...),
           fmt: str = typer.Option(None, "--format", help="csv | parquet | jsonl (default: by extension)"),
           part: str = typer.Option(None, "--part", help="With a split ref: train | validation | test.")) -> None:
    """Write a table version (or a split part) to a CSV, Parquet or JSON Lines file."""
    path = write_file(_read(ctx, ref, part, None, None), file, fmt)
    console.print(f"wrote {ref}{f' ({part})' if part else ''} to {path}")


def _read(ctx: typer.Context, ref: str, part: str | None, columns: list[str] | None, where: str | None) -> pa.Table:
    """A table ref reads a version; a split ref (split:NAME@N) reads one part of it."""
    data = state(ctx).workspace().data
    if ref.startswith("split:"):
        if part is None or where is not None:
            raise InvalidInput("a split ref needs --part train|validation|test (and takes no --where)")
        return data.read_split_arrow(ref, part, columns=columns)
    if part is not None:
        raise InvalidInput(f"--part applies to split refs (split:NAME@N), not to {ref!r}")
    return data.read_arrow(ref, columns=columns, where=where)


@app.command()
def profile(ctx: typer.Context, ref: str = typer.Argument(...),
            fmt: str = typer.Option("table", "--format", help="table | json")) -> None:
    """Per-column statistics of a version: counts, nulls, distinct, range, quantiles, top values."""
    prof = state(ctx).workspace().data.profile(ref)
    if fmt == "json":
        print_json(prof)
        return
    rows = []
    for name, s in prof["columns"].items():
        quantiles = s.get("quantiles") or {}
        top = ", ".join(f"{t['value']} ({t['count']})" for t in s.get("top_values", [])[:3])
        rows.append((name, s["dtype"], s["count"], s["nulls"], s["distinct"], _num(s.get("min")), _num(s.get("max")),
                     _num(s.get("mean")), _num(quantiles.get("0.5")), top))
    print_table(f"profile of {ref} ({prof['rows']} rows)",
                ["column", "dtype", "count", "nulls", "distinct", "min", "max", "mean", "median", "top values"], rows)


@app.command()
def validate(ctx: typer.Context, ref: str = typer.Argument(...),
             contract: Path = typer.Option(None, "--contract", help="Check against this contract instead.")) -> None:
    """Re-check a stored version against its contract; exit 1 when any check fails."""
    report = state(ctx).workspace().data.validate(ref, contract)
    print_report(report)
    raise typer.Exit(0 if report.passed else 1)


@app.command()
def split(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="Table version to split."),
    target: str = typer.Option(..., "--target", help="Target (label) column."),
    time_column: str = typer.Option(None, "--time-column", help="Split by time: train < validation < test."),
    group: str = typer.Option(None, "--group", help="Keep each group in one part."),
    fractions: str = typer.Option("0.7,0.15,0.15", "--fractions", help="train,validation,test (or train,test)."),
    gap: str = typer.Option(None, "--gap", help="Time left out between parts, e.g. 7d."),
    name: str = typer.Option(None, "--name", help="Split name (default: TABLE-split)."),
    seed: int = typer.Option(42, "--seed", help="Random seed (recorded)."),
    dedupe: bool = typer.Option(False, "--dedupe", help="Keep one copy of duplicate rows."),
    allow_duplicates: bool = typer.Option(False, "--allow-duplicates", help="Accept cross-part duplicates (audited)."),
    reason: str = typer.Option(None, "--reason", help="Why, for the audit log."),
    ignore_for_duplicates: list[str] = typer.Option(None, "--ignore-for-duplicates",
                                                    help="Columns that do not make two rows different."),
) -> None:
    """Split a table version into train/validation/test without leakage, and store the split."""
    info = state(ctx).workspace().data.split(
        ref, target=target, time_column=time_column, group=group, fractions=fractions, gap=gap, name=name,
        seed=seed, dedupe=dedupe, allow_duplicates=allow_duplicates, reason=reason,
        ignore_for_duplicates=split_list(ignore_for_duplicates))
    console.print(f"[bold]{info.ref}[/bold] from {info.source_ref} by {info.method}")
    print_table(None, ["part", "rows"], [(k, v) for k, v in info.counts.items()])
    for part, (lo, hi) in info.params.get("boundaries", {}).items():
        console.print(f"  {part}: {lo} .. {hi}")


@app.command("split-show")
def split_show(ctx: typer.Context, ref: str = typer.Argument(..., help="NAME or NAME@VERSION")) -> None:
    """How a stored split was made: table version, method, parameters and counts."""
    info = state(ctx).workspace().data.split_info(ref)
    print_json({"ref": info.ref, "source": info.source_ref, "method": info.method, "params": info.params,
                "counts": info.counts, "created_at": info.created_at, "created_by": info.created_by})


@app.command()
def vacuum(
    ctx: typer.Context, name: str = typer.Argument(...),
    retention_hours: int = typer.Option(168, "--retention-hours", min=0, help="Keep versions younger than this."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only say what would be removed."),
    reason: str = typer.Option(None, "--reason"),
) -> None:
    """Remove old files, never those of a version that lineage still references."""
    result = state(ctx).workspace().data.vacuum(name, retention_hours=retention_hours, dry_run=dry_run, reason=reason)
    verb = "would remove" if dry_run else "removed"
    console.print(f"{verb} {len(result.removed_files)} file(s) of {name}")
    print_table("kept versions", ["version", "why"], sorted(result.kept_versions.items()))
    if result.vacuumed_versions:
        console.print(f"versions no longer readable: {', '.join(map(str, result.vacuumed_versions))}")


@app.command()
def optimize(ctx: typer.Context, name: str = typer.Argument(...)) -> None:
    """Compact a table's small files (after many appends) into a new version with the same rows."""
    version = state(ctx).workspace().data.optimize(name)
    console.print(f"{version.ref}: compacted, {version.row_count} rows unchanged" if version
                  else f"{name}: nothing to compact")


@contract_app.command("set")
def contract_set(ctx: typer.Context, table: str = typer.Argument(...), file: Path = typer.Argument(...)) -> None:
    """Store FILE as the next contract version of TABLE."""
    version = state(ctx).workspace().data.set_contract(table, load_contract(file))
    console.print(f"contract:{table}@{version}")


@contract_app.command("show")
def contract_show(ctx: typer.Context, table: str = typer.Argument(...),
                  version: int = typer.Option(None, "--version")) -> None:
    """Print a contract as YAML."""
    sys.stdout.write(state(ctx).workspace().data.contract(table, version).to_yaml())


def _print_ingest(result: IngestResult) -> None:
    v = result.version
    console.print(f"[bold]{v.ref}[/bold] committed: {result.rows_written} rows written, "
                  f"{result.rows_quarantined} quarantined, of {result.rows_read} read ({v.row_count} rows in total)")
    if result.rows_quarantined:
        console.print(f"  quarantined rows: {v.table}__quarantine@{result.quarantine_version}")
    if result.report and not result.report.passed:
        print_report(result.report)


def _num(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else ("" if value is None else str(value))
