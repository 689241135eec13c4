"""``keel lineage`` and ``keel audit``: where anything came from, where it went, and who changed what."""

from __future__ import annotations

import typer
from rich.tree import Tree

from keel.cli.context import console, print_json, print_table, state
from keel.errors import InvalidInput
from keel.lineage import LineageNode


def lineage(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="Any ref: listings@3, split:listings-split@1, file:...@sha256:..."),
    direction: str = typer.Option("both", "--direction", help="up | down | both"),
    depth: int = typer.Option(None, "--depth", min=1, help="Levels to walk (default: all)."),
    fmt: str = typer.Option("tree", "--format", help="tree | json"),
) -> None:
    """Print what REF was made from (upstream) and what was made from it (downstream)."""
    if direction not in ("up", "down", "both"):
        raise InvalidInput(f"invalid --direction {direction!r}; use up, down or both")
    ws = state(ctx).workspace()
    canonical = ws.canonical_ref(ref)
    walks = {}
    if direction in ("up", "both"):
        walks["upstream (made from)"] = ws.lineage.upstream(canonical, depth)
    if direction in ("down", "both"):
        walks["downstream (used by)"] = ws.lineage.downstream(canonical, depth)
    if fmt == "json":
        print_json({"ref": canonical, **{k.split()[0]: v.to_dict() for k, v in walks.items()}})
        return
    root = Tree(f"[bold]{canonical}[/bold]")
    for title, node in walks.items():
        branch = root.add(f"[dim]{title}[/dim]")
        if not node.children:
            branch.add("[dim](nothing)[/dim]")
        _add_children(branch, node)
    console.print(root)


def audit(
    ctx: typer.Context,
    target: str = typer.Option(None, "--target", help="Only entries about this ref."),
    action: str = typer.Option(None, "--action", help="Only this action, e.g. data.vacuum."),
    limit: int = typer.Option(50, "--limit", "-n", min=1),
) -> None:
    """The audit log, newest first: who did what to which object, when and why."""
    entries = state(ctx).workspace().audit.list(target=target, action=action, limit=limit)
    print_table("audit log", ["when (UTC)", "who", "action", "target", "reason"],
                [(f"{e.at:%Y-%m-%d %H:%M:%S}", e.actor, e.action, e.target, e.reason) for e in entries])


def _add_children(branch: Tree, node: LineageNode) -> None:
    for child in node.children:
        _add_children(branch.add(f"{child.ref} [dim]({child.relation})[/dim]"), child)
