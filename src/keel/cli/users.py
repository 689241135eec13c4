"""``keel users``: people and their roles (approvers approve model versions for production)."""

from __future__ import annotations

import typer

from keel.cli.context import console, print_table, state
from keel.users import ROLES

app = typer.Typer(no_args_is_help=True, help=f"Users and roles ({', '.join(ROLES)}).")


@app.command()
def add(ctx: typer.Context, name: str = typer.Argument(..., help="User name (as KEEL_USER / the login name)."),
        role: str = typer.Option("developer", "--role", help=" | ".join(ROLES)),
        reason: str = typer.Option(None, "--reason", help="Why (kept in the audit log).")) -> None:
    """Add a user with a role."""
    user = state(ctx).workspace().users.add(name, role, reason=reason)
    console.print(f"added {user.name} ({user.role})")


@app.command("set-role")
def set_role(ctx: typer.Context, name: str = typer.Argument(...),
             role: str = typer.Argument(..., help=" | ".join(ROLES)),
             reason: str = typer.Option(None, "--reason", help="Why (kept in the audit log).")) -> None:
    """Change a user's role."""
    user = state(ctx).workspace().users.set_role(name, role, reason=reason)
    console.print(f"{user.name} is now {user.role}")


@app.command("list")
def list_users(ctx: typer.Context) -> None:
    """Users and their roles."""
    found = state(ctx).workspace().users.list()
    print_table(f"{len(found)} user(s)", ["user", "role", "added by", "added (UTC)"],
                [(u.name, u.role, u.created_by, f"{u.created_at:%Y-%m-%d %H:%M:%S}") for u in found])
