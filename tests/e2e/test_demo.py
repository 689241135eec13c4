"""The demo story end to end: what it prints is what the workspace it leaves really holds."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

import keel
from keel.demo.scenario import run_demo


def test_demo_leaves_the_workspace_it_describes(tmp_path: Path) -> None:
    out = io.StringIO()
    refs = run_demo(tmp_path / "demo", console=Console(file=out, width=120), rows_per_month=300)
    text = out.getvalue()
    assert "rejected: nothing was written" in text and "refused:" in text  # the two guard rails fire

    with keel.open(tmp_path / "demo") as ws:
        history = ws.data.history("listings")
        assert [v.version for v in history] == [1, 0] and refs["table"] == history[0].ref
        quarantined = ws.data.read("listings__quarantine")
        first = ws.data.version("listings@0")
        assert first.row_count + len(quarantined[quarantined["_keel_ingest_id"] == first.details["ingest_id"]]) \
            == 6 * 300  # rows in + rows quarantined = rows read
        split = ws.data.split_info(refs["split"])
        assert split.source_ref == refs["table"] and split.method == "time"
        train, test = ws.data.read_split(split.ref, "train"), ws.data.read_split(split.ref, "test")
        assert train["listed_at"].max() < test["listed_at"].min()
        upstream = ws.lineage.upstream(split.ref).refs()
        assert refs["first_version"] in upstream and any(r.startswith("file:listings_m1-6.csv") for r in upstream)

        # the modelling chapter: three architectures under one setup, the best registered and in production
        runs = {r.name: r for r in ws.runs.list(experiment="price")}
        assert set(runs) == {"baseline", "linear", "boosting"} and refs["runs"] == {n: r.id for n, r in runs.items()}
        rmse = {n: r.metrics["validation.rmse"] for n, r in runs.items()}
        assert refs["best"] == min(rmse, key=rmse.get) and rmse[refs["best"]] < rmse["baseline"]
        assert all(ws.runs.get(r.id).inputs == [split.ref] for r in runs.values())
        production = ws.models.version("price@production")
        assert production.ref == refs["model"] and production.run_id == runs[refs["best"]].id
        assert ws.models.approvals("price", production.version, environment="production")
        assert ws.models.card("price").card["business_metric"] == "booked nights"
        model_lineage = ws.lineage.upstream(refs["model"]).refs()
        assert split.ref in model_lineage and any(r.startswith("file:listings_m1-6.csv") for r in model_lineage)
        test_rows = ws.data.read_split(split.ref, "test")
        assert ws.models.load("price@production").predict(test_rows).shape == (len(test_rows),)
    assert "price@production predicts" in text
