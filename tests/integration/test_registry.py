"""The model registry (issue 3): versions, aliases, environments with approvals, cards, show and diff."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyRegressor
from sklearn.linear_model import LinearRegression
from test_cli import keel_cli, ok

import keel
from keel.demo.generator import LISTINGS_CONTRACT
from keel.errors import InvalidInput, InvalidRef, NotFound, PermissionDenied


def _frame(rows: int = 40, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    x = pd.DataFrame({"accommodates": rng.integers(1, 8, rows), "bedrooms": rng.integers(0, 4, rows),
                      "latitude": rng.normal(52.5, 0.05, rows)})
    return x, 30 * x["accommodates"] + 10 * x["bedrooms"] + rng.normal(0, 5, rows)


def _as(ws: keel.Workspace, user: str) -> keel.Workspace:
    """The same workspace opened by another person."""
    return keel.open(ws.root, user=user, metadata_url=ws.settings.metadata_url)


@pytest.fixture
def registered(any_ws: keel.Workspace) -> Iterator[keel.Workspace]:
    """price/1 (a dummy) and price/2 (a linear model), each from its own run."""
    x, y = _frame()
    for model, params in ((DummyRegressor(), {"kind": "dummy"}), (LinearRegression(), {"kind": "linear"})):
        with any_ws.runs.start("price") as run:
            run.log_params(params)
            model.fit(x, y)
            run.log_metric("rmse", float(np.sqrt(np.mean((model.predict(x) - y) ** 2))))
            run.log_model(model, "price", input_example=x, description=params["kind"])
    yield any_ws


def test_versions_are_numbered_and_refs_resolve(registered: keel.Workspace) -> None:
    ws = registered
    assert [v.version for v in ws.models.versions("price")] == [1, 2]
    assert ws.models.version("price").version == 2
    assert ws.models.version("price@latest").version == 2
    assert ws.models.version("model:price/1").description == "dummy"
    assert ws.canonical_ref("price/1") == "model:price/1"
    ws.models.set_alias("price/1", "champion", reason="first")
    assert ws.models.version("price@champion").version == 1
    assert ws.models.get("price").aliases == {"champion": 1}
    x, _ = _frame(5, seed=1)
    assert np.allclose(ws.models.load("price@champion").predict(x), ws.models.load("price/1").model.predict(x))


def test_unknown_names_and_bad_refs_are_clear_errors(registered: keel.Workspace) -> None:
    ws = registered
    with pytest.raises(NotFound, match="unknown model 'nope'"):
        ws.models.version("nope/1")
    with pytest.raises(NotFound, match=r"no version 9 \(versions 1..2\)"):
        ws.models.version("price/9")
    with pytest.raises(NotFound, match="no alias 'champion'"):
        ws.models.load("price@champion")
    with pytest.raises(InvalidRef, match="not by time"):
        ws.models.version("price@2024-01-01")
    with pytest.raises(InvalidInput, match="environment"):
        ws.models.set_alias("price/1", "production")
    with pytest.raises(InvalidInput):
        ws.models.set_alias("price/1", "latest")
    with pytest.raises(InvalidInput, match="unknown environment"):
        ws.models.promote("price/1", "prod")
    with pytest.raises(InvalidInput, match="not fitted"):
        ws.models.register(LinearRegression(), "price", signature=ws.models.version("price/1").signature)
    assert ws.models.get("price").latest_version == 2


def test_aliases_move_and_every_move_is_history_and_audit(registered: keel.Workspace) -> None:
    ws = registered
    ws.models.set_alias("price/1", "champion", reason="baseline first")
    ws.models.set_alias("price/2", "champion", reason="linear beats the dummy")
    ws.models.remove_alias("price", "champion", reason="retired")
    moves = [(e.alias, e.previous_version, e.version, e.reason) for e in ws.models.alias_history("price")]
    assert moves == [("champion", None, 1, "baseline first"), ("champion", 1, 2, "linear beats the dummy"),
                     ("champion", 2, None, "retired")]
    actions = [e.action for e in ws.audit.list(target="model:price")]
    assert actions.count("model.alias") == 2 and "model.alias.remove" in actions
    assert ws.models.get("price").aliases == {}


def test_production_needs_an_approval_by_an_approver(registered: keel.Workspace) -> None:
    ws = registered
    ws.models.promote("price/2", "staging", reason="try it")  # staging needs no approval
    with pytest.raises(PermissionDenied, match="no approval for production"):
        ws.models.promote("price/2", "production")
    with pytest.raises(PermissionDenied, match="approver role"):
        ws.models.approve("price/2", reason="looks good")  # the acting user is an unknown developer
    ws.users.add("carol", "approver")
    carol = _as(ws, "carol")
    try:
        with pytest.raises(InvalidInput, match="reason"):
            carol.models.approve("price/2", reason=" ")
        approval = carol.models.approve("price/2", reason="gates passed, card reviewed")
        assert (approval.approved_by, approval.role, approval.environment) == ("carol", "approver", "production")
        # the approval is for version 2 only
        with pytest.raises(PermissionDenied):
            ws.models.promote("price/1", "production")
        version = ws.models.promote("price/2", "production", reason="approved by carol")
        assert version.aliases == ["production", "staging"]
        assert ws.models.version("price@production").version == 2
    finally:
        carol.close()
    audit = {e.action: e for e in reversed(ws.audit.list(target="model:price/2"))}  # newest wins
    assert audit["model.approve"].actor == "carol" and audit["model.approve"].reason == "gates passed, card reviewed"
    assert audit["model.promote"].details == {"alias": "production", "from": None, "to": 2,
                                              "gates": {"report": None, "status": "no checklist declared"}}


def test_an_override_needs_an_admin_and_a_reason_and_is_audited(registered: keel.Workspace) -> None:
    ws = registered
    with pytest.raises(PermissionDenied, match="admin"):
        ws.models.promote("price/1", "production", override=True, reason="hotfix")
    ws.users.add("root-admin", "admin")
    admin = _as(ws, "root-admin")
    try:
        with pytest.raises(InvalidInput, match="reason"):
            admin.models.promote("price/1", "production", override=True)
        admin.models.promote("price/1", "production", override=True, reason="incident 42: roll back to the dummy")
    finally:
        admin.close()
    entry = ws.audit.list(action="model.promote.override")[0]
    assert (entry.actor, entry.target, entry.reason) == ("root-admin", "model:price/1",
                                                          "incident 42: roll back to the dummy")


def test_roles_are_stored_and_validated(any_ws: keel.Workspace) -> None:
    ws = any_ws
    ws.users.add("dave", "viewer")
    assert ws.users.get("dave").role == "viewer" and ws.users.get("nobody").known is False
    ws.users.set_role("dave", "approver", reason="joined the review rota")
    assert [(u.name, u.role) for u in ws.users.list()] == [("dave", "approver")]
    with pytest.raises(InvalidInput, match="unknown role"):
        ws.users.add("erin", "superuser")
    with pytest.raises(keel.KeelError, match="exists"):
        ws.users.add("dave", "viewer")
    with pytest.raises(NotFound):
        ws.users.set_role("nobody", "viewer")


def test_the_model_card_is_versioned(registered: keel.Workspace) -> None:
    ws = registered
    assert ws.models.card("price") is None
    first = ws.models.update_card("price", purpose="nightly price suggestions", owner="pricing-team",
                                  consumers="host app, pricing dashboard", latency_requirement="p99 < 50 ms",
                                  business_metric="booked nights")
    second = ws.models.update_card("price", owner="ml-platform", reason="team change")
    assert (first.version, second.version) == (1, 2)
    assert second.card["purpose"] == "nightly price suggestions" and second.card["owner"] == "ml-platform"
    assert second.card["consumers"] == ["host app", "pricing dashboard"]
    assert ws.models.card("price", 1).card["owner"] == "pricing-team"
    assert [c.version for c in ws.models.card_history("price")] == [1, 2]
    with pytest.raises(InvalidInput, match="unknown model card field"):
        ws.models.update_card("price", colour="blue")


def test_show_has_the_lineage_end_to_end(ws: keel.Workspace, listings_csv: Path) -> None:
    ws.data.ingest(listings_csv, "listings", contract=LISTINGS_CONTRACT, on_bad_rows="quarantine")
    split = ws.data.split("listings", target="price", time_column="listed_at", dedupe=True)
    train = ws.data.read_split(split.ref, "train")
    features = ["accommodates", "bedrooms", "bathrooms"]
    x, y = train[features].fillna(0), train["price"]
    with ws.runs.start("price", inputs=[split.ref]) as run:
        run.log_param("alpha", 0)
        run.log_metric("rmse", 12.5)
        version = run.log_model(LinearRegression().fit(x, y), "price", input_example=x)
    ws.models.promote(version.name, "staging", reason="first")
    info = ws.models.show("price/1")
    assert info["run"]["id"] == run.id and info["run"]["params"] == {"alpha": "0"}
    assert info["run"]["metrics"] == {"rmse": 12.5}
    assert info["training_data"][:2] == [split.ref, split.source_ref]
    assert set(info["package"]["files"]) == {"model.skops", "requirements.txt", "input_example.parquet"}
    assert info["environment"]["python"] and info["environment"]["flavor_library"].startswith("sklearn ")
    assert info["environments"] == {"staging": 1}
    assert [c["name"] for c in info["signature"]["inputs"]] == features
    downstream = ws.lineage.downstream(split.ref).refs()
    assert "model:price/1" in downstream


def test_diff_shows_params_metrics_and_signature(registered: keel.Workspace) -> None:
    result = registered.models.diff("price/1", "price/2")
    assert result["params"] == {"kind": ["dummy", "linear"]}
    assert result["metrics"]["rmse"]["delta"] < 0
    assert result["model_class"] == ["sklearn.dummy.DummyRegressor", "sklearn.linear_model._base.LinearRegression"]
    assert result["signature"] == {"added": [], "removed": [], "changed": {}}


def test_the_cli_drives_the_registry(tmp_path: Path) -> None:
    ws = keel.init(tmp_path / "ws")
    x, y = _frame()
    with ws.runs.start("price") as run:
        run.log_model(LinearRegression().fit(x, y), "price", input_example=x)
    ws.close()
    root = tmp_path / "ws"
    env = {"KEEL_USER": "alice"}
    assert "price" in ok(keel_cli("models", "list", cwd=root)).out
    assert "LinearRegression" in ok(keel_cli("models", "versions", "price", cwd=root)).out
    ok(keel_cli("models", "alias", "price/1", "champion", "--reason", "first", cwd=root))
    refused = keel_cli("models", "promote", "price/1", "production", cwd=root, env=env)
    assert refused.code == 2 and refused.err_lines == [refused.err_lines[0]]
    assert refused.err_lines[0].startswith("error: price/1 has no approval for production")
    ok(keel_cli("users", "add", "alice", "--role", "approver", cwd=root))
    ok(keel_cli("models", "approve", "price/1", "--reason", "checked", cwd=root, env=env))
    assert "price@production → price/1" in ok(keel_cli("models", "promote", "price/1", "production",
                                                        cwd=root, env=env)).out
    ok(keel_cli("models", "card", "price", "--set", "purpose=price suggestions", "--set", "owner=pricing", cwd=root))
    shown = ok(keel_cli("models", "show", "price@production", cwd=root)).out
    assert "model:price/1" in shown and "approvals" in shown and "price suggestions" in shown
    x.head(3).to_csv(tmp_path / "rows.csv", index=False)
    predicted = ok(keel_cli("models", "predict", "price@champion", "--input", tmp_path / "rows.csv", cwd=root)).out
    assert "prediction" in predicted
    x.drop(columns="bedrooms").head(3).to_csv(tmp_path / "bad.csv", index=False)
    bad = keel_cli("models", "predict", "price/1", "--input", tmp_path / "bad.csv", cwd=root)
    assert bad.code == 2 and "missing column(s) bedrooms" in bad.err
    history = ok(keel_cli("models", "history", "price", cwd=root)).out
    assert "champion" in history and "production" in history


def test_the_cli_evaluates_a_registered_version_on_a_split(tmp_path: Path, listings_csv: Path) -> None:
    ws = keel.init(tmp_path / "ws")
    ws.data.ingest(listings_csv, "listings", contract=LISTINGS_CONTRACT, on_bad_rows="quarantine")
    split = ws.data.split("listings", target="price", time_column="listed_at", dedupe=True)
    features = ["accommodates", "bedrooms"]
    with ws.runs.start("price", inputs=[split.ref]) as run:
        model = ws.runs.fit(LinearRegression(), split.ref, features=features, run=run)
        run.log_model(model, "price", input_example=ws.data.read_split(split.ref, "train", columns=features))
    ws.close()
    out = ok(keel_cli("models", "evaluate", "price/1", "--data", split.ref, "--slice", "room_type", "--importance",
                      "--format", "json", cwd=tmp_path / "ws")).out
    result = json.loads(out)
    evaluation = result["evaluation"]
    assert result["model"] == "price/1" and evaluation["features"] == features
    assert evaluation["metrics"]["validation"]["rmse"] < evaluation["baseline"]["validation"]["rmse"]
    assert {s["column"] for s in evaluation["slices"]} == {"room_type"}
    assert set(result["importance"]["permutation_mean"]) == set(features)
    missing = keel_cli("models", "evaluate", "price/1", "--data", "nope", cwd=tmp_path / "ws")
    assert missing.code == 2 and missing.err_lines[0].startswith("error: unknown split nope")
