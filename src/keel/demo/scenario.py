"""The demo story (DESIGN.md section 5) so far: versioned, validated, split listings; three models compared,
the best registered, approved and promoted.

Each capability issue extends this one story; every step prints what a user would see.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.tree import Tree

from keel.demo.features import FEATURE_COLUMNS, REQUESTED
from keel.demo.features import definitions as feature_definitions
from keel.demo.generator import LISTINGS_CONTRACT, generate_listings, write_listings
from keel.demo.modelling import CATEGORICAL, NUMERIC, train_and_register
from keel.demo.monitoring import monitoring_chapter
from keel.demo.retraining import Retraining
from keel.demo.serving import serving_chapter
from keel.errors import Conflict, LeakageError, ValidationFailed
from keel.lineage import LineageNode
from keel.workspace import init

__all__ = ["run_demo"]


def run_demo(path: str | Path, *, fresh: bool = True, console: Console | None = None,
             rows_per_month: int = 1500) -> dict[str, Any]:
    """Run the story in a new workspace at ``path``; returns the refs it made, for tests and the UI."""
    console = console or Console()
    root = Path(path).resolve()
    if root.exists() and fresh:
        if not (root / "keel.toml").exists() and any(root.iterdir()):
            raise Conflict(f"{root} exists and is not a keel workspace; choose another --path")
        shutil.rmtree(root)
    ws = init(root)
    raw = root / "raw"
    raw.mkdir(exist_ok=True)
    step = _stepper(console)
    console.print(Panel.fit("keel demo — a model is not the product; the system is the product.\n"
                            f"workspace: {root}", style="bold"))

    with step("Generate months 1-6 of listings (with duplicates and broken rows)"):
        first = write_listings(generate_listings(range(1, 7), rows_per_month=rows_per_month), raw / "listings_m1-6.csv")
    console.print(f"  {first.name}: {sum(1 for _ in first.open()) - 1} rows")

    with step("Ingest with the contract, rejecting bad rows (the default)"):
        try:
            ws.data.ingest(first, "listings", contract=LISTINGS_CONTRACT, time_column="listed_at")
        except ValidationFailed as exc:
            _report(console, exc.report)
            console.print("  [yellow]rejected: nothing was written[/yellow]")

    with step("Ingest again, quarantining bad rows"):
        v0 = ws.data.ingest(first, "listings", contract=LISTINGS_CONTRACT, time_column="listed_at",
                            on_bad_rows="quarantine")
    console.print(f"  {v0.version.ref}: {v0.rows_written} rows in + {v0.rows_quarantined} quarantined = "
                  f"{v0.rows_read} read")
    reasons = ws.data.read("listings__quarantine", columns=["_keel_reason"])["_keel_reason"].value_counts()
    _table(console, "quarantine reasons", ["reason", "rows"], reasons.items())

    with step("Month 7 arrives as Parquet: append a new version"):
        month7 = write_listings(generate_listings([7], rows_per_month=rows_per_month), raw / "listings_m7.parquet")
        v1 = ws.data.ingest(month7, "listings", on_bad_rows="quarantine")
    console.print(f"  {v1.version.ref}: +{v1.rows_written} rows, {v1.rows_quarantined} quarantined "
                  f"(the stored contract was applied)")
    history = ws.data.history("listings")
    _table(console, "keel data history listings", ["version", "committed (UTC)", "operation", "rows", "source"],
           [(v.version, f"{v.committed_at:%H:%M:%S.%f}"[:-3], v.operation, v.row_count, v.source_name)
            for v in history])

    with step("Time travel: by version and by timestamp"):
        at_v0 = ws.data.read_arrow("listings@0", columns=["listing_id"]).num_rows
        stamp = history[-1].committed_at + (history[0].committed_at - history[-1].committed_at) / 2
        at_time = ws.data.version(f"listings@{stamp.isoformat()}")
        latest = ws.data.version("listings")
    console.print(f"  listings@0 has {at_v0} rows; listings@{stamp:%H:%M:%S.%f} resolves to version "
                  f"{at_time.version}; latest is version {latest.version} with {latest.row_count} rows")

    with step("Profile the latest version (the later monitoring baseline)"):
        profile = ws.data.profile("listings")
    price = profile["columns"]["price"]
    console.print(f"  price: mean {price['mean']:.1f}, median {price['quantiles']['0.5']:.1f}, "
                  f"p95 {price['quantiles']['0.95']:.1f}; room types: "
                  + ", ".join(f"{t['value']} {t['count']}" for t in profile["columns"]["room_type"]["top_values"]))

    with step("Feature views: neighbourhood and host statistics, each value stamped when it became known"):
        plan = ws.features.apply(feature_definitions())
    console.print(f"  applied {', '.join(f'{v}@{n}' for v, n in sorted(plan.versions.items()))} "
                  f"(entities: {', '.join(plan.entities_added)})")

    with step("A point-in-time training set: each listing gets only what was known when it was listed"):
        training = ws.features.training_set("listings", REQUESTED, label="price", timestamp="listed_at",
                                            name="price_training", full_names=True)
    frame = training.to_pandas()
    known = frame[FEATURE_COLUMNS].notna().mean()
    console.print(f"  {training.ref}: {training.num_rows} rows, stored as table {training.table_ref}; values known "
                  f"for {known.iloc[0]:.0%} of listings (neighbourhood) and {known.iloc[2]:.0%} (host: first "
                  "listings have no history)")

    with step("Split the training set by time — duplicates are checked first"):
        try:  # a re-posted listing is the same home whatever its features say: they do not count
            ws.data.split(training.table_ref, target="price", time_column="listed_at",
                          ignore_for_duplicates=FEATURE_COLUMNS)
        except LeakageError as exc:
            console.print(f"  [yellow]refused:[/yellow] {exc.message}")
        split = ws.data.split(training.table_ref, target="price", time_column="listed_at", dedupe=True,
                              gap=timedelta(days=1), name="listings-split", ignore_for_duplicates=FEATURE_COLUMNS)
    _table(console, f"{split.ref} (by {split.method}, 1 day gap)", ["part", "rows", "from", "to"],
           [(p, split.counts[p], *(b[:19] for b in split.params["boundaries"][p]))
            for p in ("train", "validation", "test")])
    console.print(f"  left out: {split.counts['dropped_duplicates']} duplicates, {split.counts['dropped_gap']} "
                  "rows in the gaps")

    models = train_and_register(ws, split.ref, console, step, lambda title, columns, rows: _table(
        console, title, columns, rows), extra=FEATURE_COLUMNS)

    with step("Materialise the views online and check online against offline"):
        ws.features.materialize()
        skew = [ws.features.check_skew(view, sample=200) for view in ("neighbourhood_stats", "host_stats")]
    console.print("  " + "; ".join(f"{s.view}: {s.checked} entities, {len(s.mismatches)} mismatches" for s in skew))
    shown = ws.features.show("neighbourhood_stats")
    _table(console, "feature registry: neighbourhood_stats", ["feature", "dtype", "owner", "consumers"],
           [(f["name"], f["dtype"], f["owner"], ", ".join(f["consumers"]["model"]) or "none (removal candidate)")
            for f in shown["features"]])

    served = serving_chapter(ws, split.ref, [*CATEGORICAL, *NUMERIC, *FEATURE_COLUMNS], models, console, step,
                             lambda title, columns, rows: _table(console, title, columns, rows))

    tables = lambda title, columns, rows: _table(console, title, columns, rows)  # noqa: E731
    retraining = Retraining(ws, console, step, tables, models["best"])
    watched = monitoring_chapter(ws, split.ref, [*CATEGORICAL, *NUMERIC, *FEATURE_COLUMNS], raw, rows_per_month,
                                 console, step, tables, retraining=retraining)
    looped = retraining.close_the_loop()

    with step("Lineage: from the production model back to the raw file"):
        tree = ws.lineage.upstream(models["model"])
    console.print(_tree(tree))
    refs = {"table": latest.ref, "first_version": v0.version.ref, "split": split.ref,
            "training_set": training.ref, **models, **served, **watched, "retraining": looped}
    console.print(Panel.fit(
        f"done. {latest.row_count} clean rows in {len(history)} versions, "
        f"{v0.rows_quarantined + v1.rows_quarantined} rows quarantined, split {split.ref}; "
        f"{models['best']} model registered as {models['model']}; production now serves "
        f"{looped.get('serving_after') or served['serving']} ({looped.get('retrain') or 'no retrain'}).\n"
        f"Try: keel -w {root} models show price@production", style="green"))
    ws.close()
    return refs


def _stepper(console: Console) -> Callable[[str], Any]:
    counter = {"n": 0}

    def step(title: str) -> Any:
        counter["n"] += 1
        console.rule(f"[bold]{counter['n']}. {title}", align="left")
        return console.status(title)

    return step


def _report(console: Console, report: Any) -> None:
    console.print(f"  {report.summary()}")
    _table(console, None, ["check", "column", "rows"], [(f.check, f.column, f.failed) for f in report.failures])


def _table(console: Console, title: str | None, columns: list[str], rows: Any) -> None:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(v) for v in row))
    console.print(table)


def _tree(node: LineageNode, tree: Tree | None = None) -> Tree:
    tree = tree or Tree(f"[bold]{node.ref}[/bold]")
    for child in node.children:
        _tree(child, tree.add(f"{child.ref} [dim]({child.relation})[/dim]"))
    return tree


