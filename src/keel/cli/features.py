"""``keel features``: apply definitions, list and show views with their consumers, training sets,
materialisation, online lookups and skew checks."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer

from keel.cli.context import console, print_json, print_table, split_list, state
from keel.errors import InvalidInput

app = typer.Typer(no_args_is_help=True, help="Feature views, point-in-time training sets, the online store.")


@app.command()
def apply(ctx: typer.Context,
          module: Path = typer.Argument(None, help="Definitions file (default: features.py in the workspace)."),
          prune: bool = typer.Option(True, "--prune/--no-prune", help="Remove stored views the file no longer has."),
          dry_run: bool = typer.Option(False, "--dry-run", help="Show the plan; store nothing.")) -> None:
    """Validate the definitions, show the plan, and store a new version of each changed view."""
    started = time.perf_counter()
    plan = state(ctx).workspace().features.apply(module, prune=prune, dry_run=dry_run)
    rows = [*(("+", v, "added") for v in plan.added), *(("~", v, "changed") for v in plan.changed),
            *(("-", v, "removed") for v in plan.removed), *(("=", v, "unchanged") for v in plan.unchanged),
            *(("+", e, "entity added") for e in plan.entities_added),
            *(("~", e, "entity changed") for e in plan.entities_changed)]
    print_table("plan", ["", "name", "change"], rows)
    verb = "would store" if dry_run else "stored" if plan.applied else "nothing to store"
    versions = ", ".join(f"{v}@{n}" for v, n in sorted(plan.versions.items()) if v in [*plan.added, *plan.changed])
    console.print(f"{verb}{': ' + versions if versions and not dry_run else ''} "
                  f"({time.perf_counter() - started:.2f} s)", markup=False)


@app.command("list")
def list_views(ctx: typer.Context, fmt: str = typer.Option("table", "--format", help="table | json")) -> None:
    """Feature views with their latest version, entities, features and ttl."""
    views = state(ctx).workspace().features.list()
    if fmt == "json":
        print_json([{"name": v.name, "version": v.version, "kind": v.kind, "definition": v.definition} for v in views])
        return
    print_table(f"{len(views)} feature view(s)", ["view", "version", "kind", "entities", "features", "ttl", "owner"],
                [(v.name, v.version, v.kind, ", ".join(v.entities), ", ".join(f["name"] for f in v.features),
                  v.ttl or "", v.definition.get("owner") or "") for v in views])


@app.command()
def show(ctx: typer.Context, view: str = typer.Argument(..., help="View name (or NAME@VERSION)."),
         fmt: str = typer.Option("table", "--format", help="table | json")) -> None:
    """A view: schema, versions, source tables, freshness, and each feature's consumers."""
    shown = state(ctx).workspace().features.show(view)
    if fmt == "json":
        print_json(shown)
        return
    created = f"{shown['created_at']:%Y-%m-%d %H:%M:%S}"
    console.print(f"{shown['ref']} ({shown['kind']}) by {shown['created_by']} at {created} UTC", markup=False)
    if "sources" in shown:
        console.print("sources: " + ", ".join(f"{t}@{v}" for t, v in shown["sources"].items()), markup=False)
        fresh = shown["freshness"]
        console.print(f"latest event: {fresh['latest_event'] or '-'}; materialised until: "
                      f"{fresh['materialized_until'] or 'never'}", markup=False)
    print_table("features", ["feature", "dtype", "description", "owner", "models", "deployments", "jobs", "runs",
                             "training sets", ""],
                [(f["name"], f["dtype"], f["description"] or "", f["owner"] or "",
                  ", ".join(f["consumers"]["model"]) or "-", ", ".join(f["consumers"]["deployment"]) or "-",
                  ", ".join(f["consumers"]["job"] + f["consumers"]["pipeline"]) or "-", f["counts"]["run"],
                  f["counts"]["trainingset"], "removal candidate" if f["removal_candidate"] else "")
                 for f in shown["features"]])
    print_table("versions", ["version", "created (UTC)", "by", "fingerprint"],
                [(v["version"], f"{v['created_at']:%Y-%m-%d %H:%M:%S}", v["created_by"], v["fingerprint"])
                 for v in shown["versions"]])


@app.command("training-set")
def training_set(
    ctx: typer.Context,
    entities: str = typer.Argument(..., help="Table ref of the entity rows (join keys, timestamp, label)."),
    feature: list[str] = typer.Option(..., "--feature", "-f", help="view:feature (repeat, or comma lists)."),
    label: str = typer.Option(None, "--label", help="The label column of the entity rows."),
    timestamp: str = typer.Option("event_timestamp", "--timestamp", help="The entity rows' timestamp column."),
    name: str = typer.Option(None, "--name", help="Store as this training set (a new version of it)."),
    full_names: bool = typer.Option(False, "--full-names", help="Name columns view__feature."),
) -> None:
    """Compute a point-in-time correct training set and store it as a versioned table."""
    found = state(ctx).workspace().features.training_set(entities, split_list(feature) or [], label=label,
                                                         timestamp=timestamp, name=name, full_names=full_names)
    info = found.info
    console.print(f"{info.ref}: {info.rows} rows, {len(info.features)} features, stored as table "
                  f"{found.table_ref} (views {', '.join(f'{v}@{n}' for v, n in info.view_versions.items())}; "
                  f"sources {', '.join(f'{t}@{n}' for t, n in info.source_versions.items())})", markup=False)


@app.command("training-sets")
def training_sets(ctx: typer.Context, name: str = typer.Argument(None, help="Only this training set.")) -> None:
    """Stored training sets, newest version first."""
    found = state(ctx).workspace().features.training_sets(name)
    print_table(f"{len(found)} training set version(s)", ["ref", "rows", "features", "views", "created (UTC)", "by"],
                [(t.ref, t.rows, len(t.features), ", ".join(f"{v}@{n}" for v, n in t.view_versions.items()),
                  f"{t.created_at:%Y-%m-%d %H:%M:%S}", t.created_by) for t in found])


@app.command()
def materialize(
    ctx: typer.Context,
    views: list[str] = typer.Argument(None, help="Views to materialise (default: all batch views)."),
    start: str = typer.Option(None, "--start", help="UTC start of the event-time window (ISO 8601)."),
    end: str = typer.Option(None, "--end", help="UTC end of the window (default: now)."),
    incremental: bool = typer.Option(False, "--incremental", help="From where the last materialisation ended."),
) -> None:
    """Write each view's latest value per entity into the online store."""
    done = state(ctx).workspace().features.materialize(views or None, start=start, end=end, incremental=incremental)
    print_table("materialised", ["view", "version", "from", "until", "entities", "written", "store"],
                [(m["view"], m["version"], m["start_ts"] or "-", m["end_ts"], m["rows"], m["written"], m["store"])
                 for m in done])


@app.command()
def online(
    ctx: typer.Context,
    feature: list[str] = typer.Option(..., "--feature", "-f", help="view:feature (repeat, or comma lists)."),
    entity: list[str] = typer.Option(..., "--entity", "-e", help='An entity row as JSON, e.g. \'{"driver_id": 7}\'.'),
) -> None:
    """Look up online values, each with its status (present, missing, expired)."""
    rows = []
    for text in entity:
        try:
            row = json.loads(text)
        except json.JSONDecodeError:
            raise InvalidInput(f"--entity {text!r} is not JSON; write it like '{{\"driver_id\": 7}}'") from None
        if not isinstance(row, dict):
            raise InvalidInput(f"--entity {text!r} must be a JSON object of join keys")
        rows.append(row)
    print_json(state(ctx).workspace().features.online(split_list(feature) or [], rows).to_json())


@app.command("check-skew")
def check_skew(ctx: typer.Context, view: str = typer.Argument(..., help="View name."),
               sample: int = typer.Option(1000, "--sample", min=1, help="Entities to check.")) -> None:
    """Compare online values with the offline point-in-time values at materialisation time."""
    report = state(ctx).workspace().features.check_skew(view, sample=sample)
    console.print(f"{report.view}@{report.version}: {report.checked} entities checked, {len(report.mismatches)} "
                  f"mismatch(es) (materialised until {report.materialized_until})", markup=False)
    if report.mismatches:
        print_table("mismatches", ["entity", "online", "offline"],
                    [(m["entity"], m["online"], m["offline"]) for m in report.mismatches[:50]])
        raise typer.Exit(1)
