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
        assert [v.version for v in history] == [4, 3, 2, 1, 0]  # months 1-6, 7, then 8, 9, 10 (monitoring)
        assert refs["table"] == history[3].ref and history[0].source_name == "listings_m10.parquet"
        quarantined = ws.data.read("listings__quarantine")
        first = ws.data.version("listings@0")
        assert first.row_count + len(quarantined[quarantined["_keel_ingest_id"] == first.details["ingest_id"]]) \
            == 6 * 300  # rows in + rows quarantined = rows read
        # the feature chapter: the models train from a point-in-time training set over the latest listings
        training = ws.features.get_training_set(refs["training_set"])
        assert training.entity_source == refs["table"] and set(training.view_versions) == {"neighbourhood_stats",
                                                                                             "host_stats"}
        assert training.source_versions == {"listings": history[3].version}
        split = ws.data.split_info(refs["split"])
        assert split.source_ref == f"table:{training.table}@{training.version}" and split.method == "time"
        for view in ("neighbourhood_stats", "host_stats"):
            shown = ws.features.show(view)
            assert all(refs["model"] in f["consumers"]["model"] for f in shown["features"])
            assert ws.features.check_skew(view, sample=50).ok
        train, test = ws.data.read_split(split.ref, "train"), ws.data.read_split(split.ref, "test")
        assert train["listed_at"].max() < test["listed_at"].min()
        upstream = ws.lineage.upstream(split.ref).refs()
        assert refs["first_version"] in upstream and any(r.startswith("file:listings_m1-6.csv") for r in upstream)
        assert refs["training_set"] in upstream and "features:neighbourhood_stats@1" in upstream

        # the modelling chapter: three architectures under one setup, the best registered and in production
        runs = {r.name: r for r in ws.runs.list(experiment="price") if r.name not in ("boosting-retuned",
                                                                                     "broken-retraining")}
        assert set(runs) == {"baseline", "linear", "boosting"} and refs["runs"] == {n: r.id for n, r in runs.items()}
        rmse = {n: r.metrics["validation.rmse"] for n, r in runs.items()}
        assert refs["best"] == min(rmse, key=rmse.get) and rmse[refs["best"]] < rmse["baseline"]
        assert all(ws.runs.get(r.id).inputs == [split.ref] for r in runs.values())
        production = ws.models.version(refs["model"])  # the first champion (the serving chapter replaces it)
        assert production.run_id == runs[refs["best"]].id
        assert ws.models.approvals("price", production.version, environment="production")
        assert ws.models.card("price").card["business_metric"] == "booked nights"
        model_lineage = ws.lineage.upstream(refs["model"]).refs()
        assert split.ref in model_lineage and any(r.startswith("file:listings_m1-6.csv") for r in model_lineage)
        test_rows = ws.data.read_split(split.ref, "test")
        assert ws.models.load(refs["model"]).predict(test_rows).shape == (len(test_rows),)

        # the release chapter: every promotion went through the gates; the weaker challenger was blocked
        assert ws.gates.checklist("price").version == 1
        promoted = ws.gates.latest(refs["model"].removeprefix("model:"))
        assert promoted.status == "passed" and promoted.against_version is None
        blocked = ws.gates.report(refs["blocked_report"])
        assert blocked.status == "failed" and blocked.against_version == production.version
        assert "staging" not in ws.models.version(refs["blocked"].removeprefix("model:")).aliases
        challenger = ws.gates.report(refs["challenger_report"])
        assert challenger.releasable  # passed, or overridden by the approver (small data)
        assert ws.gates.report(refs["blocked_report"]).ref in ws.lineage.downstream(refs["blocked"]).refs()

        # the serving chapter: shadow, a canary that reached production, a broken one rolled back on its own
        deployment = ws.deployments.get("price")
        assert refs["serving"] == refs["challenger"].removeprefix("model:")
        assert refs["canary_actions"][-1] == "rollback" and "promote" in refs["canary_actions"], text
        history = ws.deployments.history("price")
        actions = [v.action for v in history]
        rolled = actions.index("rollback")
        assert actions[:3] == ["create", "shadow", "canary"] and actions[rolled - 1] == "canary"
        assert "mean_shift" in history[rolled].reason
        assert deployment.current.policy["fallbacks"][-1] == "baseline"
        # the retraining chapter: the drift streak fired the policy once; a person approved; the canary promoted
        looped = refs["retraining"]
        assert looped["fired"] == {7: [], 8: [], 9: ["retrain:1"], 10: []}, text
        retrain = ws.retraining.get(1)
        assert retrain.status == "approved" and retrain.trigger["kind"] == "drift" and retrain.decision["by"] == ws.user
        assert retrain.window["kind"] == "since_drift_start" and retrain.window["guard"]["holdout"] > 0
        window = ws.data.read("listings_retraining_window", columns=["listing_id"])
        assert len(window) == retrain.window["rows"] and window["listing_id"].min() >= 8_000_000  # months 8 and 9
        assert looped["retrain_canary"][-1] == "promote" and actions[-1] == "promote", [
            (v.action, v.reason) for v in history[rolled + 1:]]
        assert deployment.current.policy["arms"][0]["model"] == retrain.candidate == looped["serving_after"]
        assert ws.models.version("price@production").name == retrain.candidate
        assert deployment.current.policy["holdout"] == 0.2
        candidate = ws.models.version(retrain.candidate).ref
        assert "retrain:1" in ws.lineage.upstream(candidate).refs()
        run = ws.pipelines.show(retrain.pipeline_run)
        assert run.status == "succeeded" and [s.step for s in run.steps] == ["window", "training_set", "split",
                                                                            "train", "gates"]
        # the monitoring chapter: each month's change caught by the monitor, its alert fired, a trace, the report
        reports = ws.monitors.reports("price-drift")
        assert [r.number for r in reversed(reports)] == refs["reports"] == [1, 2, 3, 4]
        assert not reports[-1].results.get("alerts") or not any(a.get("firing") for a in reports[-1].results["alerts"])
        assert "neighbourhood" in refs["drifted"][8] and "neighbourhood" not in refs["drifted"][7]
        assert {"drift(neighbourhood) > 0.1", "missing(bathrooms) > 0.5", "rmse > 1.2 x training"} <= set(
            refs["alerts_fired"]), text
        performance = reports[0].results["performance"]  # month 10: errors well above training's
        assert performance["metrics"]["rmse"] > 1.2 * performance["training"]["rmse"]
        trace = ws.monitors.trace(refs["trace"])
        assert trace["route"]["served_by"] == refs["serving"] and trace["feedback"]
        incident = ws.incidents.get(refs["incident"].removeprefix("incident:"))
        kinds = {e["kind"] for e in incident.timeline["events"]}
        assert {"data", "alert"} <= kinds and incident.severity == "high" and incident.notes
        html = Path(refs["report_html"]).read_text()
        assert html.lower().startswith("<!doctype html>") and "price-drift" in html and "<script src=" not in html
        logged = ws.data.read("predictions", columns=["kind", "deployment"])
        assert (logged.kind == "primary").sum() >= 900 and (logged.kind == "shadow").sum() >= 150
    assert "price@production predicts" in text and "promotion refused" in text
