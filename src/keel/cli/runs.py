"""``keel runs``: list (filter, sort), show and compare experiment runs."""

from __future__ import annotations

import typer
from rich.table import Table

from keel.cli.context import console, print_json, print_table, state

app = typer.Typer(no_args_is_help=True, help="Experiment runs: params, metrics, artifacts, environment.")


@app.command("list")
def list_runs(
    ctx: typer.Context,
    experiment: str = typer.Option(None, "--experiment", "-e", help="Only this experiment."),
    filter: str = typer.Option(None, "--filter", help='e.g. "metrics.rmse < 3 and params.max_depth = 5"'),
    sort: str = typer.Option(None, "--sort", help="e.g. -metrics.rmse (descending), params.lr"),
    status: str = typer.Option(None, "--status", help="running | finished | failed | killed"),
    limit: int = typer.Option(50, "--limit", "-n", min=1),
    fmt: str = typer.Option("table", "--format", help="table | json"),
) -> None:
    """Runs matching a filter, sorted; newest first by default."""
    found = state(ctx).workspace().runs.list(experiment=experiment, filter=filter, sort=sort, status=status,
                                             limit=limit)
    if fmt == "json":
        print_json([r.__dict__ for r in found])
        return
    metric_keys = sorted({k for r in found for k in r.metrics})[:6]
    print_table(f"{len(found)} run(s)", ["run", "experiment", "name", "status", "started (UTC)", *metric_keys],
                [(r.id[:12], r.experiment, r.name, r.status, f"{r.started_at:%Y-%m-%d %H:%M:%S}",
                  *(_fmt(r.metrics.get(k)) for k in metric_keys)) for r in found])


def _fmt(value: object) -> str:
    return f"{value:.6g}" if isinstance(value, float) else ("" if value is None else str(value))


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
