"""The ``keel`` entry point: builds the Typer app and turns every KeelError into one line + exit 2."""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path

import typer

from keel.cli import (
    data,
    demo,
    deploy,
    features,
    gates,
    incident,
    lineage,
    models,
    monitor,
    pipelines,
    predict,
    retrain,
    runs,
    serve,
    server,
    users,
)
from keel.cli.context import CliState, console, err_console, print_report, state
from keel.errors import KeelError
from keel.logs import configure_logging
from keel.tracking.buffer import flush_all
from keel.workspace import init as init_workspace

app = typer.Typer(
    name="keel", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    help="keel: data, features, runs, models, gates, deployments, monitoring and retraining, in one lineage graph.",
)
app.add_typer(data.app, name="data")
app.add_typer(features.app, name="features")
app.add_typer(runs.app, name="runs")
app.add_typer(models.app, name="models")
app.add_typer(gates.app, name="gates")
app.add_typer(deploy.app, name="deploy")
app.add_typer(monitor.app, name="monitor")
app.add_typer(incident.app, name="incident")
app.add_typer(pipelines.app, name="pipelines")
app.add_typer(retrain.app, name="retrain")
app.add_typer(users.app, name="users")
app.add_typer(server.tokens, name="tokens")
app.command("server")(server.server)
app.command("serve")(serve.serve)
app.command("scheduler")(pipelines.scheduler)
app.command("predict")(predict.predict)
app.command("lineage")(lineage.lineage)
app.command("trace")(monitor.trace)
app.add_typer(monitor.logs, name="logs")
app.add_typer(monitor.labels, name="labels")
app.command("audit")(lineage.audit)
app.command("demo")(demo.demo)


@app.callback()
def root(
    ctx: typer.Context,
    workspace: str | None = typer.Option(None, "--workspace", "-w", envvar="KEEL_WORKSPACE",
                                         help="Workspace folder (default: the nearest keel.toml above the cwd)."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
) -> None:
    ctx.obj = CliState(workspace_path=workspace, debug=debug)
    if debug:
        configure_logging("DEBUG")


@app.command("init")
def init(
    ctx: typer.Context,
    path: Path = typer.Argument(Path("."), help="Folder to create the workspace in."),
) -> None:
    """Create keel.toml and .keel/ (metadata DB, Delta data root, artifact root)."""
    del ctx
    ws = init_workspace(path)
    console.print(f"initialised keel workspace in {ws.root}")
    ws.close()


# typer may vendor its own click; take click's exception base from typer's own classes
_ClickException = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user errors print ``error: ...`` and exit 2, with a traceback only under --debug."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args or os.environ.get("KEEL_DEBUG") == "1"
    try:
        result = app(args=args, prog_name="keel", standalone_mode=False)
        return result if isinstance(result, int) else 0  # typer.Exit(n) comes back as n here
    except KeelError as exc:
        if debug:
            traceback.print_exc()
        report = getattr(exc, "report", None)
        if report is not None and report.failures:
            print_report(report, err_console)
        err_console.print(f"error: {exc.message}", markup=False, soft_wrap=True)
        return exc.exit_code
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        err_console.print("error: aborted", markup=False)
        return 130
    except _ClickException as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # `keel data`: the group's help is the answer
            console.print(exc.format_message(), markup=False)
            return 0
        err_console.print(f"error: {exc.format_message()}", markup=False, soft_wrap=True)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bug in keel: say so in one line, keep the traceback for --debug
        if debug:
            traceback.print_exc()
        err_console.print(f"error: internal error ({type(exc).__name__}: {exc}); rerun with --debug for the "
                          "traceback and report it", markup=False, soft_wrap=True)
        return 1


def run() -> None:
    """The console script: exit without interpreter teardown once output is flushed.

    deltalake's background runtime can abort the process during teardown ("terminate called without
    an active exception", delta-io/delta-rs#2184) after a command has finished correctly; the exit
    code must be the command's, not SIGABRT's.
    """
    code = main()
    flush_all()  # os._exit skips atexit: buffered metric points must reach the database first
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


__all__ = ["app", "main", "run", "state"]

if __name__ == "__main__":
    run()
