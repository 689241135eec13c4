"""``keel serve``: the data plane. Deployments answer predictions over HTTP (keel/serving/app.py)."""

from __future__ import annotations

import json
import os

import typer

from keel.cli.context import state

_ENV = "KEEL_SERVE_OPTIONS"


def serve(ctx: typer.Context,
          host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (loopback by default)."),
          port: int = typer.Option(8000, "--port", min=1, max=65535),
          workers: int = typer.Option(1, "--workers", min=1, help="Worker processes (one model thread each)."),
          deployment: list[str] = typer.Option(None, "--deployment", help="Serve only these (default: every "
                                                                          "active deployment)."),
          timeout_ms: int = typer.Option(1000, "--timeout-ms", min=1, help="Per-request time before a fallback "
                                                                           "answers."),
          log_level: str = typer.Option("info", "--log-level")) -> None:
    """Serve predictions: POST /v1/endpoints/{name}/predict, /invocations (MLflow formats), /healthz, /readyz,
    /metrics. Every answer is in the prediction log (table `predictions`)."""
    import uvicorn

    from keel.workspace import open_workspace

    root = str(open_workspace(state(ctx).workspace_path).root)  # fail here, not in a worker
    os.umask(0o077)
    os.environ[_ENV] = json.dumps({"workspace": root, "deployments": deployment or [], "timeout_s": timeout_ms / 1e3})
    uvicorn.run("keel.cli.serve:app_from_env", factory=True, host=host, port=port, workers=workers,
                log_level=log_level, server_header=False, timeout_graceful_shutdown=30)


def app_from_env() -> object:
    """The data-plane app for one uvicorn worker, from the options ``serve`` put in the environment."""
    from keel.serving.app import create_predictor_app
    from keel.workspace import open_workspace

    options = json.loads(os.environ[_ENV])
    return create_predictor_app(open_workspace(options["workspace"]), options["deployments"] or None,
                                timeout_s=options["timeout_s"])
