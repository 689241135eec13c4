"""``keel pipelines`` (apply, list, run, runs, show, retry) and ``keel scheduler``: DAGs of steps over keel refs,
run by hand or by their triggers."""

from __future__ import annotations

import signal
import threading
from typing import Any

import typer

from keel.cli.context import console, output_format, print_json, print_table, state
from keel.errors import InvalidInput
from keel.pipelines.model import PipelineRun
from keel.pipelines.scheduler import Scheduler
from keel.pipelines.service import parse_params

app = typer.Typer(no_args_is_help=True, help="Pipelines: DAGs of steps with cached runs, lineage and triggers.")

FORMAT = typer.Option("table", "--format", help="table | json")
JSON = typer.Option(False, "--json", help="Same as --format json.")
RUN = typer.Argument(..., help="The run's id (7 or pipeline_run:7).")
EXECUTOR = typer.Option("process", "--executor", help="process (each step in its own process) | inline")
WORKERS = typer.Option(2, "--workers", min=1, max=64, help="Steps run side by side at most.")


@app.command()
def apply(ctx: typer.Context, module: str = typer.Argument(..., help="A Python file or an importable module."),
          reason: str = typer.Option(None, "--reason"), fmt: str = FORMAT, as_json: bool = JSON) -> None:
    """Store the pipelines a module defines (a new version only when one changed)."""
    fmt = output_format(fmt, as_json)
    applied = _pipelines(ctx).apply(module, reason=reason)
    if fmt == "json":
        print_json([p.to_dict() for p in applied])
        return
    for info in applied:
        console.print(f"{info.ref}: {len(info.steps)} step(s), triggers: "
                      f"{', '.join(t['kind'] for t in info.triggers) or 'none'}", markup=False)


@app.command("list")
def list_(ctx: typer.Context, fmt: str = FORMAT, as_json: bool = JSON) -> None:
    """Applied pipelines, each at its newest version."""
    fmt = output_format(fmt, as_json)
    found = _pipelines(ctx).list()
    if fmt == "json":
        print_json([p.to_dict() for p in found])
        return
    print_table("pipelines", ["name", "version", "steps", "triggers", "applied (UTC)", "by"],
                [(p.name, p.version, " -> ".join(s["name"] for s in p.steps),
                  ", ".join(t["kind"] for t in p.triggers) or "-", f"{p.applied_at:%Y-%m-%d %H:%M}", p.applied_by)
                 for p in found])


@app.command()
def run(ctx: typer.Context, name: str = typer.Argument(..., help="The pipeline."),
        param: list[str] = typer.Option(None, "--param", help="name=value (repeatable); JSON values are read "
                                                              "as JSON."),
        force: bool = typer.Option(False, "--force", help="Run every step, even those whose inputs are unchanged."),
        queue: bool = typer.Option(False, "--queue", help="Leave it to the scheduler instead of running it here."),
        executor: str = EXECUTOR, workers: int = WORKERS, fmt: str = FORMAT, as_json: bool = JSON) -> None:
    """Run a pipeline now (or queue it); exits 1 when a step failed."""
    fmt = output_format(fmt, as_json)
    service = _pipelines(ctx)
    params = parse_params(param)
    made = service.enqueue(name, params, force=force, trigger={"kind": "manual"}) if queue else \
        service.run(name, params, force=force, executor=executor, workers=workers)
    _print_run(made, fmt, logs=False)
    if made.status == "failed":
        raise typer.Exit(1)


@app.command()
def runs(ctx: typer.Context, name: str = typer.Argument(None, help="Only this pipeline's runs."),
         status: str = typer.Option(None, "--status", help="queued | running | succeeded | failed"),
         limit: int = typer.Option(50, "--limit", min=1, max=10_000), fmt: str = FORMAT,
         as_json: bool = JSON) -> None:
    """Runs, newest first."""
    fmt = output_format(fmt, as_json)
    found = _pipelines(ctx).runs(name, status=status, limit=limit)
    if fmt == "json":
        print_json([r.to_dict(logs=False) for r in found])
        return
    print_table("pipeline runs", ["run", "pipeline", "status", "trigger", "steps", "started (UTC)", "seconds", "by"],
                [(r.id, f"{r.pipeline}@{r.version}", r.status, r.trigger.get("kind", "?"), _counts(r),
                  f"{r.started_at:%Y-%m-%d %H:%M:%S}" if r.started_at else "-",
                  f"{(r.ended_at - r.started_at).total_seconds():.1f}" if r.ended_at and r.started_at else "-",
                  r.created_by) for r in found])


@app.command()
def show(ctx: typer.Context, run_id: str = RUN, logs: bool = typer.Option(True, "--logs/--no-logs"),
         fmt: str = FORMAT, as_json: bool = JSON) -> None:
    """A run: per step, its status, duration, inputs, output, error and logs."""
    _print_run(_pipelines(ctx).show(run_id), output_format(fmt, as_json), logs=logs)


@app.command()
def retry(ctx: typer.Context, run_id: str = RUN, executor: str = EXECUTOR, workers: int = WORKERS,
          fmt: str = FORMAT, as_json: bool = JSON) -> None:
    """Resume a failed run from its failure: finished steps keep their outputs."""
    made = _pipelines(ctx).retry(run_id, executor=executor, workers=workers)
    _print_run(made, output_format(fmt, as_json), logs=False)
    if made.status == "failed":
        raise typer.Exit(1)


def scheduler(ctx: typer.Context,
              interval: float = typer.Option(10.0, "--interval", min=0.1, help="Seconds between ticks."),
              lease: float = typer.Option(60.0, "--lease", min=1, help="Seconds a lease lasts unless renewed."),
              once: bool = typer.Option(False, "--once", help="One tick (and the run it starts), then exit."),
              executor: str = EXECUTOR, workers: int = WORKERS,
              canaries: bool = typer.Option(True, "--canaries/--no-canaries", help="Step active canaries."),
              monitors: bool = typer.Option(True, "--monitors/--no-monitors", help="Run monitors as their windows "
                                                                                   "close.")) -> None:
    """Run monitors, evaluate triggers and retraining policies, step canaries and execute queued runs, until
    stopped."""
    ws = state(ctx).workspace()
    if not hasattr(ws, "db"):
        raise InvalidInput("keel scheduler runs beside the metadata store: give it a workspace folder, not a URL")
    runner = Scheduler(ws, interval_s=interval, lease_s=lease, executor=executor, workers=workers, canaries=canaries,
                       monitors=monitors)
    if once:
        tick = runner.tick(wait=True)
        runner.close()
        print_json(tick.to_dict())
        return
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    console.print(f"keel scheduler {runner.holder}: every {interval:g} s (Ctrl-C stops)", markup=False)
    runner.serve(stop)


def _pipelines(ctx: typer.Context) -> Any:
    return state(ctx).workspace().pipelines


def _counts(run: PipelineRun) -> str:
    counts: dict[str, int] = {}
    for s in run.steps:
        counts[s.status] = counts.get(s.status, 0) + 1
    return ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))


def _print_run(found: PipelineRun, fmt: str, *, logs: bool) -> None:
    if fmt == "json":
        print_json(found.to_dict(logs=logs))
        return
    console.print(f"{found.ref} of pipeline {found.pipeline}@{found.version}: {found.status} (attempt "
                  f"{found.attempt}, trigger {found.trigger.get('kind')}"
                  + (f": {found.trigger['what']}" if found.trigger.get("what") else "") + ")", markup=False,
                  soft_wrap=True)
    print_table(None, ["step", "status", "seconds", "output", "inputs", "error"],
                [(s.step, s.status + (f" (from run {s.cached_from})" if s.cached_from else ""),
                  f"{s.seconds:.2f}" if s.seconds is not None else "-", _short(s.output),
                  ", ".join(f"{k}={_short(v)}" for k, v in s.inputs.items()), s.error or "")
                 for s in found.steps])
    if logs:
        for s in found.steps:
            if s.logs.strip():
                console.rule(f"{s.step} log", align="left")
                console.print(s.logs.rstrip(), markup=False, highlight=False)


def _short(value: Any) -> str:
    text = "-" if value is None else str(value)
    return text if len(text) <= 60 else text[:57] + "..."
