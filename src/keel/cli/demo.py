"""``keel demo``: the end-to-end story on generated data, in a fresh workspace, then the server on it."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import typer

from keel.cli.context import console


def demo(
    path: Path = typer.Option(Path("demo-workspace"), "--path", help="Where to create the demo workspace."),
    rows_per_month: int = typer.Option(1500, "--rows-per-month", min=100, help="Listings generated per month."),
    server: bool = typer.Option(None, "--server/--no-server",
                                help="Serve the UI and API on a free loopback port at the end "
                                     "(default: when run in a terminal)."),
) -> None:
    """Run the demo scenario (data, models, registry), then serve it so the UI can show it."""
    from keel.demo.scenario import run_demo  # scikit-learn and friends: only the demo pays for importing them

    run_demo(path, console=console, rows_per_month=rows_per_month)
    if server is None:
        server = sys.stdin.isatty() and sys.stdout.isatty()
    if not server:
        console.print(f"See it in the browser: keel -w {path} server  (then log in with a token from "
                      f"`keel -w {path} tokens create USER`)")
        return
    serve_demo(path)


def serve_demo(path: Path) -> None:
    """Give the demo's user an admin token and serve the workspace on a free loopback port until Ctrl-C."""
    from keel.server.main import serve
    from keel.workspace import open_workspace

    with open_workspace(path) as ws:
        user = ws.users.get(ws.user)
        if not user.known:
            ws.users.add(ws.user, "admin", reason="the demo's user administers the demo workspace")
        elif user.role != "admin":
            ws.users.set_role(ws.user, "admin", reason="the demo's user administers the demo workspace")
        token = ws.tokens.create(ws.user, expires_in="7d", description="keel demo").token
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    console.print(f"\n[bold]keel server[/bold]: http://127.0.0.1:{port}/  "
                  f"(API: http://127.0.0.1:{port}/api/v1/, OpenAPI at /api/v1/openapi.json)")
    console.print(f"log in with this token (valid 7 days): {token}", markup=False)
    console.print("Ctrl-C stops the server; the workspace stays.")
    serve(str(path), host="127.0.0.1", port=port, log_level="warning")
