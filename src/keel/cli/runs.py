"""``keel runs``: list (filter, sort), show and compare experiment runs."""

from __future__ import annotations

import typer
from rich.table import Table

from keel.cli.context import console, print_json, print_table, state

app = typer.Typer(no_args_is_help=True, help="Experiment runs: params, metrics, artifacts, environment.")


@app.command()
def show(ctx: typer.Context, run_id: str = typer.Argument(..., help="Run id (or run:ID)."),
         fmt: str = typer.Option("table", "--format", help="table | json")) -> None:
    """Everything about one run: status, params, metrics, tags, artifacts, inputs, environment."""
    info = state(ctx).workspace().runs.get(run_id)
    if fmt == "json":
        print_json(info.__dict__)
        return
    git = info.environment.get("git") or {}
    console.print(f"[bold]{info.ref}[/bold] {info.experiment}{f' / {info.name}' if info.name else ''}: "
                  f"{info.status}{f' ({info.error})' if info.error else ''}")
    console.print(f"  by {info.created_by} at {info.started_at:%Y-%m-%d %H:%M:%S} UTC"
                  + (f", {info.duration_s:.1f} s" if info.duration_s is not None else "")
                  + (f"; parent run:{info.parent_id}" if info.parent_id else ""))
    console.print(f"  python {info.environment.get('python', {}).get('version')}, keel "
                  f"{info.environment.get('keel_version')}, git {git.get('commit', 'n/a')}"
                  + (" (dirty)" if git.get("dirty") else ""))
    for title, values in (("params", info.params), ("metrics", info.metrics), ("tags", info.tags),
                          ("artifacts (sha256)", info.artifacts)):
        if values:
            print_table(title, ["key", "value"], sorted(values.items()))
    if info.inputs:
        console.print("  inputs: " + ", ".join(info.inputs))


@app.command()
def compare(ctx: typer.Context, run_ids: list[str] = typer.Argument(..., help="Two or more run ids.")) -> None:
    """Params and metrics side by side; values that differ between runs are highlighted."""
    result = state(ctx).workspace().runs.compare(run_ids)
    table = Table(header_style="bold")
    table.add_column("")
    for run_id in result["runs"]:
        table.add_column(run_id[:12])
    for section in ("params", "metrics"):
        for key, values in result[section].items():
            differs = key in result[f"{section}_differ"]
            style = "bold yellow" if differs else ""
            table.add_row(f"{section}.{key}" + (" *" if differs else ""),
                          *("" if v is None else str(v) for v in values), style=style)
    console.print(table)
    console.print("* differs between runs")
