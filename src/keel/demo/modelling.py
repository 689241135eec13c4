"""The demo's modelling chapter: three models under the same setup, the best registered, gated, approved and
promoted; then two challengers meet the release gates (demo/release.py).

"Start with simple models; evaluate model architectures under similar setups": a dumb baseline, a
linear model and gradient boosting are each fitted on the training part only, evaluated on every part
and per room type beside the dummy baseline, compared, and the best (by validation RMSE) registered
with its card, approved by an approver and promoted to production.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.console import Console
from sklearn.compose import ColumnTransformer
from sklearn.dummy import DummyRegressor
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

from keel.demo.release import GATES_FILE, challengers, ensure_approver, gate
from keel.workspace import Workspace

__all__ = ["CATEGORICAL", "FEATURES", "NUMERIC", "candidates", "train_and_register"]

CATEGORICAL = ["neighbourhood", "room_type", "property_type"]
NUMERIC = ["accommodates", "bedrooms", "bathrooms", "beds", "latitude", "longitude", "minimum_nights"]
FEATURES = CATEGORICAL + NUMERIC
MONOTONE = ("accommodates",)  # more guests never lower the price: a constraint on the model, and a release gate


def candidates(numeric: list[str] = NUMERIC) -> dict[str, Any]:
    """The three architectures, each a whole pipeline so preprocessing is fitted with the model."""
    linear = Pipeline([
        ("prepare", ColumnTransformer([
            ("categories", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
            ("numbers", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric)])),
        ("ridge", Ridge(alpha=1.0))])
    boosting = Pipeline([
        ("prepare", ColumnTransformer([
            ("categories", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1), CATEGORICAL),
            ("numbers", "passthrough", numeric)])),
        ("gbm", HistGradientBoostingRegressor(max_iter=150, learning_rate=0.1, categorical_features=[0, 1, 2],
                                              monotonic_cst=[0, 0, 0, *(1 if c in MONOTONE else 0 for c in numeric)],
                                              random_state=0))])
    return {"baseline": DummyRegressor(strategy="mean"), "linear": linear, "boosting": boosting}


def train_and_register(ws: Workspace, split_ref: str, console: Console, step: Callable[[str], Any],
                       table: Callable[..., None], extra: list[str] | None = None) -> dict[str, Any]:
    """Fit, evaluate and compare the candidates; register, document, approve and promote the best.
    ``extra``: numeric feature columns beyond the listing's own (the feature store's)."""
    results: dict[str, Any] = {}
    numeric = [*NUMERIC, *(extra or [])]
    features = [*CATEGORICAL, *numeric]
    with step("Train a dumb baseline, a linear model and gradient boosting on the training part only"):
        for name, estimator in candidates(numeric).items():
            with ws.runs.start("price", name=name, inputs=[split_ref], tags={"demo": "months 1-7"}) as run:
                model = ws.runs.fit(estimator, split_ref, features=features, run=run)
                report = ws.runs.evaluate(model, split_ref, features=features, slices=["room_type"], run=run)
                if name == "boosting":
                    importance = ws.runs.importance(model, split_ref, features=features, run=run, shap=False)
            results[name] = {"run": run.id, "model": model, "report": report}
    rows = []
    for name, result in results.items():
        report = result["report"]
        val, base = report.metrics["validation"], report.baseline["validation"]
        rows.append((name, f"{val['rmse']:.1f}", f"{val['mae']:.1f}", f"{val['r2']:.3f}", f"{base['rmse']:.1f}",
                     "yes" if report.better_than_baseline.get("validation") else "no"))
    table("validation part (same split, same features)", ["model", "rmse", "mae", "r2", "baseline rmse",
                                                          "beats baseline"], rows)
    best = min((n for n in results if n != "baseline"),
               key=lambda n: results[n]["report"].metrics["validation"]["rmse"])
    worst = results[best]["report"].worst_slices.get("validation", {}).get("rmse")
    if worst:
        console.print(f"  worst room type for {best}: {worst.get('slice', worst)}")
    candidates_to_drop = importance.removal_candidates
    console.print(f"  boosting: removal candidates (permutation importance ~ 0): "
                  f"{', '.join(candidates_to_drop) or 'none'}; correlated pairs: "
                  f"{', '.join(f'{a}~{b}' for a, b, _ in importance.correlated_pairs) or 'none'}")

    with step(f"Register the best ({best}) with its card"):
        example = ws.data.read_split(split_ref, "train", columns=features).head(5)
        version = ws.models.register(results[best]["model"], "price", run=results[best]["run"], input_example=example,
                                     description=f"{best} on {split_ref}")
        ws.models.update_card("price", purpose="suggest a nightly price to hosts when they list",
                              owner="pricing team", consumers="host app listing form, pricing dashboard",
                              intended_use="a starting point the host edits; not automatic pricing",
                              latency_requirement="p99 < 50 ms per request", business_metric="booked nights")
        ws.models.set_alias(version.name, "champion", reason="best validation rmse of three architectures")
    with step("Declare the release checklist and run it: the gates guard every promotion"):
        ws.gates.set_checklist("price", GATES_FILE, reason="the price model's release checklist")
        report = gate(ws, version.name, console, table)
        if not report.releasable:  # small data (--rows-per-month) can fail a required test: a person decides
            ensure_approver(ws)
            ws.gates.override(report.id, reason="the demo's small data; accepted for the walkthrough, see the report")
            console.print(f"  [yellow]{', '.join(r.name for r in report.blocking)} failed[/yellow]: the approver "
                          f"overrode {report.ref} with a reason (audited)")
    with step("Promote to staging; an approver approves; promote to production"):
        ws.models.promote(version.name, "staging", reason="first candidate; its gates passed")
        ensure_approver(ws)
        ws.models.approve(version.name, reason="gates passed; beats the baseline on every room type checked")
        ws.models.promote(version.name, "production", reason="approved")
    loaded = ws.models.load("price@production")
    predicted = loaded.predict(ws.data.read_split(split_ref, "test").head(3))
    console.print(f"  {version.ref} ({version.flavor}): aliases {', '.join(ws.models.version(version.name).aliases)}; "
                  f"price@production predicts {', '.join(f'{p:.0f}' for p in predicted)} for three test listings")
    runner_up = next(n for n in ("linear", "boosting") if n != best)
    month7 = challengers(ws, split_ref, features, results, runner_up, console, step, table)
    return {"model": version.ref, "best": best, "runs": {n: r["run"] for n, r in results.items()}, **month7}
