"""Release gates end to end on an embedded workspace: good models pass, each broken model fails the gate
meant to catch it (with evidence rows), reports are stored and re-used, and promotions obey them."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import keel
from gates_helpers import CHECKLIST, FEATURES, register, toy_frame, toy_world
from keel.errors import Conflict, GatesFailed, InvalidInput, NotFound, PermissionDenied


@pytest.fixture
def world(ws: keel.Workspace) -> tuple[keel.Workspace, keel.SplitInfo]:
    return ws, toy_world(ws)


def by_name(report: keel.GateReport) -> dict[str, keel.gates.TestResult]:
    return {r.name: r for r in report.results}


def test_a_good_model_passes_every_test_and_the_report_is_stored_reused_and_linked(world) -> None:
    ws, split = world
    version = register(ws, split)
    info = ws.gates.set_checklist("toy", CHECKLIST)
    assert (info.version, ws.gates.set_checklist("toy", CHECKLIST).version) == (1, 1)  # unchanged: same version
    report = ws.gates.run(version.name)
    assert report.status == "passed" and report.releasable and not report.reused
    results = by_name(report)
    assert all(r.status == "passed" for r in report.results if r.name != "metric"), report.results
    # no champion yet: the comparison with it is skipped, the absolute and baseline conditions hold
    assert results["metric"].status == "passed" and "skipped, no champion" in results["metric"].message
    assert results["metric"].value < 2 and results["slice"].details["worst_slice"].startswith("cat=")
    assert results["leakage"].details["method"] == "time"
    again = ws.gates.run(version.name)
    assert again.reused and again.id == report.id
    forced = ws.gates.run(version.name, force=True)
    assert not forced.reused and forced.id != report.id
    assert ws.gates.report(report.id).results == report.results
    assert [r.id for r in ws.gates.reports("toy")] == [forced.id, report.id]
    assert ws.gates.latest(version.name).id == forced.id
    downstream = ws.lineage.downstream(version.ref).refs()
    assert report.ref in downstream and report.ref in ws.lineage.downstream(split.ref).refs()


def test_a_model_that_ignores_its_most_important_feature_fails_metric_and_minimum_functionality(world) -> None:
    ws, split = world
    version = register(ws, split, broken="ignores_x1")
    ws.gates.set_checklist("toy", CHECKLIST)
    report = ws.gates.run(version.name)
    results = by_name(report)
    assert report.status == "failed" and not report.releasable
    assert results["metric"].status == "failed" and results["metric"].value > 2
    assert "rmse <= 2" in results["metric"].message
    easy = results["minimum_functionality"]
    assert easy.status == "failed" and easy.evidence_rows == 2
    assert {row["case"] for row in easy.evidence} == {1, 2} and "expected" in easy.evidence[0]
    assert {r.name for r in report.blocking} >= {"metric", "minimum_functionality"}


def test_an_anti_monotone_model_fails_the_directional_test_with_its_violating_rows(world) -> None:
    ws, split = world
    version = register(ws, split, broken="anti_monotone")
    ws.gates.set_checklist("toy", CHECKLIST)
    result = by_name(ws.gates.run(version.name))["directional"]
    n = split.counts["test"]
    assert result.status == "failed" and result.value == 0.0 and result.evidence_rows == n
    row = result.evidence[0]
    assert row["change"] == pytest.approx(-3.0) and row["output (x1 + 1)"] < row["output"]
    curve = result.details["curve"]
    assert [d for d, _ in curve] == [0, 1, 2, 3, 4, 5]
    assert all(b < a for (_, a), (_, b) in itertools.pairwise(curve))  # falls all the way


def test_a_model_whose_output_depends_on_a_column_that_must_not_matter_fails_invariance(world) -> None:
    ws, split = world
    version = register(ws, split, features=[*FEATURES, "id"])  # learns from the row id: it must not matter
    ws.gates.set_checklist("toy", CHECKLIST)
    result = by_name(ws.gates.run(version.name))["invariance"]
    assert result.status == "failed" and result.value < 0.5
    assert result.evidence[0]["change"] >= result.evidence[-1]["change"] > 0  # largest change first
    assert {"id (before)", "id (after)", "output (before)", "output (after)"} <= set(result.evidence[0])


def test_a_model_that_leaks_the_target_fails_the_too_good_metric_and_the_invariance_on_the_leak(
        ws: keel.Workspace) -> None:
    frame = toy_frame(1200)
    frame["refund"] = frame.y * 0.1 + np.random.default_rng(1).normal(0, 0.01, len(frame))  # known only after
    ws.data.ingest(frame, "toy", time_column="ts")
    split = ws.data.split("toy", target="y", time_column="ts", ignore_for_duplicates=["refund"])
    leaky = register(ws, split, features=[*FEATURES, "refund"])
    ws.gates.set_checklist("toy", {"tests": [
        {"name": "too good to be true", "kind": "metric", "conditions": ["r2 <= 0.995"]},
        {"name": "refund must not matter", "kind": "invariance", "perturb": {"column": "refund", "how": "shuffle"},
         "tolerance": 1.0}]})
    report = ws.gates.run(leaky.name)
    too_good, invariance = report.results
    assert too_good.status == "failed" and too_good.value > 0.995
    assert invariance.status == "failed" and invariance.evidence[0]["change"] > 1.0
    honest = register(ws, split)  # the same model without the leak passes both
    assert ws.gates.run(honest.name).status == "passed"


def test_a_split_with_duplicates_across_parts_fails_the_leakage_test(ws: keel.Workspace) -> None:
    frame = toy_frame(600)
    twins = frame.iloc[:300:30].assign(ts=frame.ts.max())  # copies of train rows, dated in the test part
    ws.data.ingest(pd.concat([frame, twins], ignore_index=True), "toy", time_column="ts")
    split = ws.data.split("toy", target="y", time_column="ts", allow_duplicates=True, reason="a leakage test")
    version = register(ws, split)
    ws.gates.set_checklist("toy", {"tests": [{"kind": "leakage"}]})
    result = ws.gates.run(version.name).results[0]
    assert result.status == "failed" and result.value == len(twins)
    assert result.evidence[0]["leak"] == "duplicate of a train row" and "x1" in result.evidence[0]
    assert result.details["checks"][0]["found"] == result.value


def test_promotion_needs_passed_gates_and_an_approver_can_override_with_a_reason(world) -> None:
    ws, split = world
    good = register(ws, split)
    ws.models.promote(good.name, "staging")  # no checklist declared yet: nothing to enforce, and it says so
    assert ws.audit.list(action="model.promote", limit=1)[0].details["gates"]["status"] == "no checklist declared"
    ws.gates.set_checklist("toy", CHECKLIST, reason="the release checklist")
    with pytest.raises(GatesFailed, match="has not been through its release gates"):
        ws.models.promote(good.name, "staging")
    ws.gates.run(good.name)
    ws.models.promote(good.name, "staging")
    promoted = ws.audit.list(action="model.promote", limit=1)[0]
    assert promoted.details["gates"]["status"] == "passed"

    weak = register(ws, split, broken="ignores_x1")
    report = ws.gates.run(weak.name)
    with pytest.raises(GatesFailed, match="failed required gate test") as refused:
        ws.models.promote(weak.name, "staging")
    assert "metric" in refused.value.details["failed"]
    with pytest.raises(PermissionDenied, match="approver"):
        ws.gates.override(report.id, reason="looks fine")  # the acting user is a developer
    ws.users.add("ann", "approver")
    ann = ws.acting_as("ann")
    with pytest.raises(InvalidInput, match="reason"):
        ann.gates.override(report.id, reason=" ")
    overridden = ann.gates.override(report.id, reason="known issue, accepted for the staging trial")
    assert overridden.releasable and overridden.override["by"] == "ann"
    with pytest.raises(Conflict, match="already overridden by ann"):
        ann.gates.override(report.id, reason="a second opinion")  # the first override stands as recorded
    ws.models.promote(weak.name, "staging")
    entry = ws.audit.list(action="gates.override", limit=1)[0]
    assert (entry.actor, entry.details["report"]) == ("ann", report.ref) and entry.reason.startswith("known issue")
    with pytest.raises(InvalidInput, match="nothing to override"):
        ann.gates.override(ws.gates.run(good.name).id, reason="x")


def test_a_weaker_challenger_is_blocked_by_the_comparison_with_the_champion(world) -> None:
    ws, split = world
    champion = register(ws, split)
    ws.gates.set_checklist("toy", {"tests": [{"kind": "metric", "conditions": ["rmse <= 1.05 * champion"]}]})
    ws.gates.run(champion.name)
    ws.users.add("ann", "approver")
    ws.acting_as("ann").models.approve(champion.name, reason="reviewed")
    ws.models.promote(champion.name, "production")
    challenger = register(ws, split, features=["x1", "x2"])  # drops the category: clearly worse
    report = ws.gates.run(challenger.name)
    assert (report.against, report.against_version, report.status) == ("production", champion.version, "failed")
    evidence = report.results[0].evidence[0]
    assert evidence["champion"] < evidence["value"] and evidence["bound"] == pytest.approx(1.05 * evidence["champion"])
    assert champion.ref in ws.lineage.upstream(report.ref).refs()
    equal = register(ws, split)  # the same model again: within 5% of the champion
    assert ws.gates.run(equal.name).status == "passed"
    # min_change asks for a real improvement, not an equal score
    ws.gates.set_checklist("toy", {"tests": [{"kind": "metric", "conditions": ["rmse <= champion"],
                                              "min_change": 0.1}]})
    stricter = ws.gates.run(equal.name)
    assert stricter.checklist_version == 2 and stricter.status == "failed"
    assert "less than min_change" in stricter.results[0].message


def test_a_nice_to_have_failure_is_reported_but_does_not_block(world) -> None:
    ws, split = world
    version = register(ws, split)
    ws.gates.set_checklist("toy", {"tests": [
        {"kind": "fairness", "sensitive": "cat", "max_error_rate_gap": 0.0001, "required": False},
        {"kind": "smoke", "range": [-50, 100]}]})
    report = ws.gates.run(version.name)
    fairness = report.results[0]
    assert fairness.status == "failed" and not fairness.required and report.status == "passed"
    assert {row["cat"] for row in fairness.evidence} == {"a", "b", "c"}
    ws.models.promote(version.name, "staging")


def test_a_model_that_raises_fails_the_tests_it_raises_in_and_the_others_still_run(world) -> None:
    from gates_helpers import RaisingModel

    ws, split = world
    example = toy_frame(5)[FEATURES]
    version = ws.models.register(RaisingModel(), "toy", flavor="python", input_example=example,
                                 run=None)
    ws.gates.set_checklist("toy", {"data": split.ref, "label": "y", "tests": [
        {"kind": "metric", "conditions": ["rmse <= 100"]},
        {"kind": "smoke", "rows": 300, "synthetic": 0},
        {"kind": "minimum_functionality", "cases": [{"input": {"x1": 1.0}, "max": 10}]}]})
    report = ws.gates.run(version.name, trusted=True)
    metric, smoke, easy = report.results
    assert metric.status == "error" and "x2 above 1.5" in metric.message
    assert smoke.status == "failed" and smoke.evidence and all(row["x2"] > 1.5 for row in smoke.evidence)
    assert easy.status == "passed"  # the typical row has x2 near 0
    assert report.status == "failed"


def test_custom_tests_are_marked_functions_recorded_by_source_hash(world, tmp_path: Path) -> None:
    ws, split = world
    version = register(ws, split)
    module = tmp_path / "ws" / "checks.py"
    module.write_text(
        "import keel\n\n"
        "@keel.custom_gate\n"
        "def predictions_below(ctx, limit):\n"
        "    pred = ctx.predict(ctx.frame)\n"
        "    bad = ctx.frame[pred > limit]\n"
        "    return keel.GateOutcome(passed=bad.empty, value=float(pred.max()), threshold=limit, evidence=bad)\n\n"
        "def unmarked(ctx):\n"
        "    return keel.GateOutcome(passed=True)\n\n"
        "@keel.custom_gate\n"
        "def wrong_type(ctx):\n"
        "    return True\n")
    spec = {"tests": [{"kind": "custom", "function": "checks.py:predictions_below", "params": {"limit": 30}},
                      {"kind": "custom", "name": "liar", "function": "checks.py:wrong_type"}]}
    info = ws.gates.set_checklist("toy", spec)
    stored = info.spec["tests"][0]["function"]
    assert stored["name"] == "predictions_below" and len(stored["sha256"]) == 64
    first, liar = ws.gates.run(version.name).results
    assert first.status == "failed" and first.threshold == 30 and first.evidence_rows > 0
    assert all(row["x1"] > 5 for row in first.evidence)  # only high-x1 rows predict above 30
    assert liar.status == "error" and "not a keel.GateOutcome" in liar.message
    with pytest.raises(InvalidInput, match=r"not marked @keel\.custom_gate"):
        ws.gates.set_checklist("toy", {"tests": [{"kind": "custom", "function": "checks.py:unmarked"}]})


def test_python_checklists_and_yaml_files_give_the_same_stored_checklist(world) -> None:
    from keel.gates import Checklist, DirectionalTest, MetricTest

    ws, split = world
    register(ws, split)
    python = Checklist(tests=[MetricTest(conditions=["rmse <= 2"]),
                              DirectionalTest(column="x1", delta=1, required=False)])
    (ws.settings.root / "gates.yaml").write_text(
        "tests:\n  - kind: metric\n    conditions: ['rmse <= 2']\n"
        "  - {kind: directional, column: x1, delta: 1, required: false}\n")
    assert ws.gates.set_checklist("toy", python).version == 1
    assert ws.gates.set_checklist("toy", "gates.yaml").version == 1  # the same checklist: no new version
    assert [c.version for c in ws.gates.checklists("toy")] == [1]


@pytest.mark.parametrize(("checklist", "message"), [
    ("tests: [", "not valid YAML"),
    ("at: 2024-13-45\ntests: []\n", "not valid YAML"),  # PyYAML raises ValueError on a bad date
    ("- just a list", "YAML mapping"),
    ({"tests": []}, "tests"),
    ({"tests": [{"kind": "vibes"}]}, "unknown kind 'vibes'"),
    ({"tests": [{"kind": "metric", "conditions": ["rmsee <= 2"]}]}, "unknown metric 'rmsee'"),
    ({"tests": [{"kind": "metric", "conditions": ["rmse is small"]}]}, "cannot read condition"),
    ({"tests": [{"kind": "metric", "conditions": ["rmse <= 0.9 * champ"]}]}, "unknown reference 'champ'"),
    ({"tests": [{"kind": "slice", "by": "neighbourhood", "conditions": ["rmse <= 3"]}]},
     "unknown column 'neighbourhood'"),
    ({"tests": [{"kind": "directional", "column": "x1", "delta": -1}]}, "delta must be positive"),
    ({"tests": [{"kind": "budget"}]}, "at least one max_"),
    ({"tests": [{"kind": "smoke", "colour": "red"}]}, "colour"),
    ({"tests": [{"kind": "smoke"}, {"kind": "smoke"}, {"kind": "smoke", "name": "smoke-2"}]}, "two tests are named"),
    ({"tests": [{"kind": "minimum_functionality", "cases": [{"input": {"price": 3}, "min": 1}]}]},
     "sets 'price', not a column of the data"),
    ({"tests": [{"kind": "invariance", "perturb": {"column": "x1", "how": "jiggle"}}]}, "perturb.how"),
    ({"tests": [{"kind": "custom", "function": "no_colon"}]}, "module:function"),
])
def test_a_bad_checklist_is_refused_with_the_reason_and_nothing_is_stored(world, checklist, message) -> None:
    ws, split = world
    register(ws, split)
    with pytest.raises(InvalidInput, match=message):
        ws.gates.set_checklist("toy", checklist)
    assert ws.gates.checklists("toy") == []


@pytest.mark.parametrize(("tests", "message"), [
    ([{"kind": "invariance", "perturb": {"column": "cat", "how": "noise"}}], "noise needs a numeric column"),
    ([{"kind": "invariance", "perturb": {"column": "x1", "how": "swap"}}], "swap is for a categorical column"),
    ([{"kind": "invariance", "perturb": {"column": "x1", "how": "set", "value": "big"}}], "does not fit"),
    ([{"kind": "directional", "column": "cat", "delta": 1}], "directional needs a numeric column"),
    ([{"kind": "metric", "conditions": ["roc_auc >= 0.8"]}], "not a regression metric"),
    ([{"kind": "fairness", "sensitive": "cat", "max_demographic_parity_difference": 0.1}], "apply to classifiers"),
])
def test_a_checklist_that_does_not_fit_the_model_is_refused_at_run_and_no_report_is_stored(world, tests,
                                                                                           message) -> None:
    ws, split = world
    version = register(ws, split)
    ws.gates.set_checklist("toy", {"tests": tests})
    with pytest.raises(InvalidInput, match=message):
        ws.gates.run(version.name)
    assert ws.gates.reports("toy") == []


def test_data_lacking_a_column_the_model_needs_is_refused(world) -> None:
    ws, split = world
    version = register(ws, split)
    ws.data.ingest(toy_frame(50).drop(columns=["x2"]), "holdout")
    ws.gates.set_checklist("toy", {"data": "holdout", "tests": [{"kind": "smoke"}]})
    with pytest.raises(InvalidInput, match="lacks column\\(s\\) 'x2' that toy/1 needs"):
        ws.gates.run(version.name)


def test_a_stored_evaluation_table_is_judged_with_the_baseline_fitted_on_the_run_train_part(world) -> None:
    ws, split = world
    version = register(ws, split)
    ws.data.ingest(toy_frame(400, seed=7), "holdout")
    ws.gates.set_checklist("toy", {"data": "holdout", "tests": [
        {"kind": "metric", "conditions": ["rmse <= 0.5 * baseline", "r2 >= 0.9"]}]})
    report = ws.gates.run(version.name)
    assert report.data.startswith("table:holdout@") and report.status == "passed"
    assert report.results[0].evidence[0]["baseline"] > 5


def test_unknown_model_version_and_report_are_not_found(world) -> None:
    ws, split = world
    with pytest.raises(NotFound):
        ws.gates.run("nope/1")
    with pytest.raises(NotFound):
        ws.gates.report("0123456789abcdef")
    with pytest.raises(NotFound, match="unknown model"):
        ws.gates.set_checklist("nope", CHECKLIST)
    register(ws, split)
    with pytest.raises(NotFound, match="keel gates set"):
        ws.gates.run("toy/1")
    with pytest.raises(NotFound):
        ws.gates.run("toy/2")


def test_behavioural_tests_predict_the_frame_in_one_call_not_row_by_row(world) -> None:
    ws, split = world
    version = register(ws, split)
    ws.gates.set_checklist("toy", {"tests": [
        {"kind": "directional", "column": "x1", "delta": 1},
        {"kind": "invariance", "perturb": {"column": "x2", "how": "noise"}, "tolerance": 100},
        {"kind": "minimum_functionality", "cases": [{"input": {"x1": 9, "cat": "c"}, "min": 30}] * 5}]})
    calls: list[int] = []
    original = keel.LoadedModel.predict

    def counting(self, data, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(len(data))
        return original(self, data, **kwargs)

    keel.LoadedModel.predict = counting  # type: ignore[method-assign]
    try:
        report = ws.gates.run(version.name)
    finally:
        keel.LoadedModel.predict = original  # type: ignore[method-assign]
    assert report.status == "passed"
    n = split.counts["test"]
    assert calls == [6 * n, n, n, 5]  # directional: six steps stacked; invariance: before and after; the cases


def test_fairness_numbers_match_fairlearn_for_a_classifier(ws: keel.Workspace) -> None:
    fairlearn = pytest.importorskip("fairlearn.metrics")
    from sklearn.linear_model import LogisticRegression

    frame = toy_frame(1500, seed=3)
    frame["label"] = np.where(frame.y > frame.y.median(), "high", "low")
    ws.data.ingest(frame.drop(columns=["y"]), "clf", time_column="ts")
    split = ws.data.split("clf", target="label", time_column="ts")
    with ws.runs.start("clf") as run:
        model = ws.runs.fit(LogisticRegression(), split.ref, features=["x1", "x2"], run=run)
        version = ws.models.register(model, "clf", run=run, input_example=frame[["x1", "x2"]].head())
    ws.gates.set_checklist("clf", {"tests": [{"kind": "fairness", "sensitive": "cat", "positive": "low",
                                              "max_demographic_parity_difference": 1,
                                              "max_equalized_odds_difference": 1, "min_group_rows": 1}]})
    result = ws.gates.run(version.name).results[0]
    test = ws.data.read_split(split.ref, "test")
    pred = model.predict(test[["x1", "x2"]])
    gaps = result.details["gaps"]
    truth, predicted = (test.label == "low").to_numpy(), pred == "low"  # Fairlearn's positive class is 1
    assert gaps["demographic_parity_difference"] == pytest.approx(fairlearn.demographic_parity_difference(
        truth, predicted, sensitive_features=test.cat))
    assert gaps["equalized_odds_difference"] == pytest.approx(fairlearn.equalized_odds_difference(
        truth, predicted, sensitive_features=test.cat))
    assert 0 < gaps["equalized_odds_difference"] < 1
