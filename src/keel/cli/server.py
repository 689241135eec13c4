"""``keel server`` and ``keel tokens``: serve the workspace over HTTP; issue and revoke API tokens."""

from __future__ import annotations

import typer

from keel.cli.context import console, print_table, state

tokens = typer.Typer(no_args_is_help=True, help="API tokens for the server (stored hashed; shown once).")


def server(ctx: typer.Context,
           host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (loopback by default)."),
           port: int = typer.Option(8080, "--port", min=1, max=65535),
           workers: int = typer.Option(1, "--workers", min=1, help="Worker processes."),
           no_auth: bool = typer.Option(False, "--no-auth", help="Loopback only: no tokens (one user, a laptop)."),
           allowed_host: list[str] = typer.Option(None, "--allowed-host",
                                                  help="Extra Host header names to serve (e.g. keel.example.com)."),
           log_level: str = typer.Option("info", "--log-level")) -> None:
    """Serve the web UI (/) and the REST API (/api/v1, OpenAPI at /api/v1/openapi.json) for this workspace."""
    from keel.server.main import serve

    serve(state(ctx).workspace_path, host=host, port=port, workers=workers, auth=not no_auth,
          allowed_hosts=allowed_host or [], log_level=log_level)


@tokens.command("create")
def create(ctx: typer.Context, user: str = typer.Argument(..., help="The user the token acts as."),
           expires: str = typer.Option(None, "--expires", help="Lifetime, e.g. 30d, 12h (default: none)."),
           description: str = typer.Option(None, "--description")) -> None:
    """Create a token; it is printed once and never stored."""
    issued = state(ctx).workspace().tokens.create(user, expires_in=expires, description=description)
    console.print(issued.token, markup=False)
    console.print(f"token {issued.info.id} for {user}"
                  + (f", expires {issued.info.expires_at:%Y-%m-%d %H:%M} UTC" if issued.info.expires_at else ""),
                  style="dim")


@tokens.command("list")
def list_tokens(ctx: typer.Context, user: str = typer.Option(None, "--user")) -> None:
    """Tokens (never their secrets), active or not."""
    found = state(ctx).workspace().tokens.list(user)
    print_table(f"{len(found)} token(s)", ["id", "user", "active", "expires (UTC)", "last used (UTC)", "description"],
                [(t.id, t.user_name, "yes" if t.active else "no",
                  f"{t.expires_at:%Y-%m-%d %H:%M}" if t.expires_at else "-",
                  f"{t.last_used_at:%Y-%m-%d %H:%M}" if t.last_used_at else "-", t.description) for t in found])


@tokens.command("revoke")
def revoke(ctx: typer.Context, token_id: str = typer.Argument(..., help="The token's id (keel_<id>_...)."),
           reason: str = typer.Option(None, "--reason")) -> None:
    """Revoke a token: it stops working at once."""
    info = state(ctx).workspace().tokens.revoke(token_id, reason=reason)
    console.print(f"revoked token {info.id} of {info.user_name}")
