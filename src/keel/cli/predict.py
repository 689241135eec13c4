"""``keel predict``: batch scoring — a model version over a table version, written as one new version of an
output table, in bounded-memory chunks, with lineage from both."""

from __future__ import annotations

import typer

from keel.cli.context import console, print_json, split_list, state
from keel.errors import InvalidInput

_FORMATS = ("table", "json")


def predict(
    ctx: typer.Context,
    model: str = typer.Argument(..., help="The model version: price/4, price@production, price (its latest)."),
    input: str = typer.Option(..., "--input", "-i", help="The table version to score: listings@3, listings."),
    output: str = typer.Option(..., "--output", "-o", help="The table the predictions are written to."),
    chunk_rows: int = typer.Option(50_000, "--chunk-rows", help="Rows scored (and held in memory) at a time."),
    keep: list[str] = typer.Option(None, "--keep", "--columns", help="Input columns to carry over: a,b or repeat "
                                   "the option (default: every column the model does not read)."),
    mode: str = typer.Option("append", "--mode", help="append | overwrite (the output table)."),
    trusted: bool = typer.Option(False, "--trusted", help="Allow a python-flavor (pickle) package."),
    reason: str = typer.Option(None, "--reason", help="Why (kept in the audit log)."),
    fmt: str = typer.Option("table", "--format", help="table | json"),
) -> None:
    """Score every row of INPUT with MODEL and commit the predictions as one new version of OUTPUT."""
    if fmt not in _FORMATS:
        raise InvalidInput(f"invalid --format {fmt!r}; use one of {', '.join(_FORMATS)}")
    result = state(ctx).workspace().predictions.score(
        model, input=input, output=output, chunk_rows=chunk_rows, keep=split_list(keep), mode=mode,  # type: ignore[arg-type]
        trusted=trusted, reason=reason)
    if fmt == "json":
        print_json(result.to_dict())
        return
    console.print(f"{result.output}: {result.rows:,} row(s) of {result.input} scored by {result.model} in "
                  f"{result.chunks} chunk(s), {result.seconds:.1f} s ({result.mode})", markup=False)
    console.print(f"columns: {', '.join(result.columns)}", markup=False)
