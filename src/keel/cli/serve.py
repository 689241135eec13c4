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
          timeout_ms: int = typer.Option(1000, "--timeout-ms", min=0, help="Per-request time before a fallback "
                                         "answers (fast models of deployments without fallbacks run on the "
                                         "request's thread, untimed); 0: no timeout anywhere (a hung model holds "
                                         "its worker)."),
          max_inflight: int = typer.Option(64, "--max-inflight", min=1, help="Requests a worker answers at once; "
                                                                             "more get a fast 503 + Retry-After."),
          trusted: bool = typer.Option(False, "--trusted", help="Load pickle packages (they run code when loaded)."),
          strict_requirements: bool = typer.Option(False, "--strict-requirements", help="Refuse a model packaged "
                                                   "with another version of its library than the one installed."),
          log_level: str = typer.Option("info", "--log-level")) -> None:
    """Serve predictions: POST /v1/endpoints/{name}/predict, /invocations (MLflow formats), /v2/models/{name}/infer
    (Open Inference Protocol), /healthz, /readyz, /metrics. Every answer is in the prediction log (table
    `predictions`); deployment changes are picked up without a restart."""
    import uvicorn

    from keel.workspace import open_workspace

    root = str(open_workspace(state(ctx).workspace_path).root)  # fail here, not in a worker
    os.umask(0o077)
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(variable, "1")  # models single-threaded: N workers on N cores do not fight
    os.environ[_ENV] = json.dumps({"workspace": root, "deployments": deployment or [], "timeout_s": timeout_ms / 1e3,
                                   "max_inflight": max_inflight, "trusted": trusted,
                                   "strict_requirements": strict_requirements})
    uvicorn.run("keel.cli.serve:app_from_env", factory=True, host=host, port=port, workers=workers,
                log_level=log_level, server_header=False, timeout_graceful_shutdown=30)


def app_from_env() -> object:
    """The data-plane app for one uvicorn worker, from the options ``serve`` put in the environment."""
    from keel.serving.app import create_predictor_app
    from keel.workspace import open_workspace

    options = json.loads(os.environ[_ENV])
    return create_predictor_app(open_workspace(options["workspace"]), options["deployments"] or None,
                                timeout_s=options["timeout_s"], max_inflight=options["max_inflight"],
                                trusted=options["trusted"], strict_requirements=options["strict_requirements"],
                                sidecar=True)
