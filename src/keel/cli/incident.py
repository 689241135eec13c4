"""``keel incident``: one chronological view of what happened to a deployment — policy changes, registry events,
data and feature versions, alerts, fallback and latency spikes — and incidents recorded with it for a blameless
post-mortem."""

from __future__ import annotations

from typing import Any

import typer

from keel.cli.context import console, output_format, print_json, print_table, state
from keel.monitoring.incidents import Incident

app = typer.Typer(no_args_is_help=True, help="Incidents: a deployment's timeline, recorded with notes.")

DEPLOYMENT = typer.Option(..., "--deployment", help="The deployment.")
FROM = typer.Option(..., "--from", help="Start: an ISO time (2024-05-01T00:00Z) or a duration back from now (6h).")
TO = typer.Option(None, "--to", help="End: an ISO time or a duration back from now (default: now).")
ID = typer.Argument(..., help="The incident's id (3 or incident:3).")
FORMAT = typer.Option("table", "--format", help="table | json")
JSON = typer.Option(False, "--json", help="Same as --format json.")


@app.command()
def timeline(ctx: typer.Context, deployment: str = DEPLOYMENT, start: str = FROM, end: str = TO, fmt: str = FORMAT,
             as_json: bool = JSON) -> None:
    """What happened to a deployment between two times, oldest first."""
    fmt = output_format(fmt, as_json)
    found = _incidents(ctx).timeline(deployment, start, end).to_dict()
    if fmt == "json":
        print_json(found)
        return
    _print_timeline(found)


@app.command()
def create(ctx: typer.Context, deployment: str = DEPLOYMENT, start: str = FROM, end: str = TO,
           title: str = typer.Option(..., "--title", help="What went wrong, in a line."),
           note: str = typer.Option(None, "--note", help="A first note (more with `keel incident note`)."),
           severity: str = typer.Option("medium", "--severity", help="low | medium | high"),
           fmt: str = FORMAT, as_json: bool = JSON) -> None:
    """Record an incident with the deployment's timeline over the range, as it reads now."""
    fmt = output_format(fmt, as_json)
    made = _incidents(ctx).create(deployment, start, end, title=title, note=note, severity=severity)
    if fmt == "json":
        print_json(made.to_dict())
        return
    console.print(f"{made.ref} recorded: {len(made.timeline.get('events', []))} event(s) on deployment "
                  f"{made.deployment}", markup=False, soft_wrap=True)


@app.command("list")
def list_(ctx: typer.Context, deployment: str = typer.Option(None, "--deployment", help="Only this deployment's."),
          limit: int = typer.Option(50, "--limit", min=1, max=10_000), fmt: str = FORMAT,
          as_json: bool = JSON) -> None:
    """Incidents, newest first."""
    fmt = output_format(fmt, as_json)
    found = _incidents(ctx).list(deployment, limit=limit)
    if fmt == "json":
        print_json([{k: v for k, v in i.to_dict().items() if k != "timeline"} for i in found])
        return
    print_table("incidents", ["id", "severity", "deployment", "from", "to", "title", "notes", "by"],
                [(i.id, i.severity, i.deployment, f"{i.window_start:%Y-%m-%d %H:%M}", f"{i.window_end:%Y-%m-%d %H:%M}",
                  i.title, len(i.notes), i.created_by) for i in found])


@app.command()
def show(ctx: typer.Context, id: str = ID, fmt: str = FORMAT, as_json: bool = JSON) -> None:
    """An incident: its title, range, severity, the timeline recorded with it, and its notes."""
    fmt = output_format(fmt, as_json)
    _print_incident(_incidents(ctx).get(id), fmt)


@app.command()
def note(ctx: typer.Context, id: str = ID, text: str = typer.Argument(..., help="The note."), fmt: str = FORMAT,
         as_json: bool = JSON) -> None:
    """Append a note to an incident: what was found, decided or done."""
    fmt = output_format(fmt, as_json)
    found = _incidents(ctx).note(id, text)
    if fmt == "json":
        print_json(found.to_dict())
        return
    console.print(f"{found.ref}: note {len(found.notes)} added", markup=False)


def _incidents(ctx: typer.Context) -> Any:
    return state(ctx).workspace().incidents


def _print_timeline(found: dict[str, Any], title: str | None = None) -> None:
    traffic = found.get("traffic", {})
    rate, p99 = traffic.get("fallback_rate"), traffic.get("median_p99_ms")
    console.print(f"deployment {found['deployment']} from {found['start']} to {found['end']}: versions "
                  f"{', '.join(map(str, found.get('versions', []))) or 'none'}; {traffic.get('requests', 0):,} "
                  f"request(s)" + (f", {rate:.1%} on fallbacks" if rate is not None else "")
                  + (f", median p99 {p99:.0f} ms" if p99 is not None else ""), markup=False, soft_wrap=True)
    print_table(title, ["at (UTC)", "kind", "subject", "what"],
                [(e["at"][:23].replace("T", " "), e["kind"], e["subject"], e["summary"]) for e in found["events"]])


def _print_incident(found: Incident, fmt: str) -> None:
    if fmt == "json":
        print_json(found.to_dict())
        return
    console.print(f"{found.ref} [{found.severity}] {found.title} — recorded by {found.created_by} at "
                  f"{found.created_at:%Y-%m-%d %H:%M:%S} UTC", markup=False, soft_wrap=True)
    if found.timeline:
        _print_timeline(found.timeline, "timeline (as recorded)")
    print_table("notes", ["at (UTC)", "by", "note"],
                [(n["at"][:19].replace("T", " "), n["by"], n["text"]) for n in found.notes])
