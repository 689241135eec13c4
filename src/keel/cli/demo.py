"""``keel demo``: the end-to-end story on generated data, in a fresh workspace."""

from __future__ import annotations

from pathlib import Path

import typer

from keel.cli.context import console
from keel.demo.scenario import run_demo


def demo(
    path: Path = typer.Option(Path("demo-workspace"), "--path", help="Where to create the demo workspace."),
    rows_per_month: int = typer.Option(1500, "--rows-per-month", min=100, help="Listings generated per month."),
) -> None:
    """Run the demo scenario: ingest, quarantine, versions, time travel, profile, split, lineage."""
    run_demo(path, console=console, rows_per_month=rows_per_month)
