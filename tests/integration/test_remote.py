"""The same user code, embedded and through a keel server: ``keel.open(path)`` and ``keel.open(url, token=...)``.

Each same-code test runs four ways: an embedded workspace and a remote one (a real uvicorn server on a
free loopback port, in a thread), each on SQLite and on PostgreSQL. A user acts through their own
workspace — embedded: the server's workspace ``acting_as`` them; remote: their token — so roles,
audit rows and errors are compared like for like. Remote-only behaviour (requests on the wire, HTTP
errors, streaming, tampering on the server's disk) is in test_remote_wire.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from remote_server import Team, start_team
from sklearn.linear_model import LinearRegression

import keel
from keel.errors import Conflict, InvalidRef, NotFound, PermissionDenied, SchemaMismatch, ValidationFailed

Opener = Callable[[str], Any]


@pytest.fixture(params=["sqlite", "postgresql"])
def team(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Team]:
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    with start_team(tmp_path / "server", metadata_url=url) as started:
        yield started


@pytest.fixture(params=["embedded", "remote"])
def open_as(request: pytest.FixtureRequest, team: Team) -> Iterator[Opener]:
    """``open_as(role)``: the workspace a user with that role works in, embedded or through the server."""
    opened: list[Any] = []

    def open_as(role: str) -> Any:
        ws = team.embedded(role) if request.param == "embedded" else team.remote(role)
        opened.append(ws)
        return ws

    yield open_as
    for ws in opened:
        ws.close()


def _data(seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    x = pd.DataFrame({"rooms": rng.integers(1, 6, 60).astype(float), "area": rng.normal(70, 20, 60)})
    return x, 30 * x["rooms"] + 2 * x["area"] + rng.normal(0, 5, 60)


# -- runs ------------------------------------------------------------------------------------------------

def test_a_run_logs_params_metrics_artifacts_and_a_model_then_searches_and_compares(
        open_as: Opener, tmp_path: Path) -> None:
    ws = open_as("developer")
    x, y = _data()
    report = tmp_path / "report.txt"
    report.write_text("rmse by slice\n")
    with ws.runs.start("price", name="linear", tags={"team": "pricing"}) as run:
        run.log_params({"alpha": 0.5, "fit_intercept": True})
        for step in range(200):
            run.log_metric("loss", 1.0 / (step + 1), step=step)
        run.log_metrics({"rmse": 4.25, "mae": 3.5})
        run.set_tag("stage", "trial")
        sha = run.log_artifact(report)
        run.log_artifact(b'{"ok": true}', "result.json")
        version = run.log_model(LinearRegression().fit(x, y), "price", input_example=x.head())
        with pytest.raises(Conflict):
            run.log_param("alpha", 0.7)  # params are immutable, embedded and remote
    with ws.runs.start("price", name="deeper") as other:
        other.log_params({"alpha": 0.1})
        other.log_metrics({"rmse": 3.0, "mae": 2.5})
    with pytest.raises(RuntimeError), ws.runs.start("price", name="broken") as broken:
        raise RuntimeError("diverged")

    info = ws.runs.get(run.id)
    assert isinstance(info, keel.RunInfo) and isinstance(run, keel.Run)
    assert info.status == "finished" and info.created_by == "dev" and info.started_at.tzinfo is not None
    assert info.params == {"alpha": "0.5", "fit_intercept": "True"}
    assert info.tags == {"team": "pricing", "stage": "trial"}
    assert info.metrics == {"loss": 1.0 / 200, "rmse": 4.25, "mae": 3.5}
    assert info.artifacts["report.txt"] == sha and "result.json" in info.artifacts
    assert ws.runs.metric_history(run.id, "loss") == [(s, 1.0 / (s + 1)) for s in range(200)]
    assert ws.runs.get(broken.id).status == "failed" and "diverged" in ws.runs.get(broken.id).error
    assert isinstance(version, keel.ModelVersion) and version.run_id == run.id and version.version == 1

    found = ws.runs.list(experiment="price", filter="metrics.rmse < 5", sort="metrics.rmse")
    assert [r.id for r in found] == [other.id, run.id]
    assert found[1].metrics["rmse"] == 4.25 and found[1].params["alpha"] == "0.5"
    compared = ws.runs.compare([run.id, other.id])
    assert compared["params"]["alpha"] == ["0.5", "0.1"] and "rmse" in compared["metrics_differ"]
    with pytest.raises(NotFound):
        ws.runs.get("0" * 32)


# -- the registry ----------------------------------------------------------------------------------------

def test_registry_flow_with_approval_by_an_approver_and_promotion(open_as: Opener) -> None:
    dev, approver = open_as("developer"), open_as("approver")
    x, y = _data()
    with dev.runs.start("price") as run:
        run.log_metric("rmse", 5.0)
        first = run.log_model(LinearRegression().fit(x, y), "price", input_example=x.head(), description="v1")
    with dev.runs.start("price") as run2:
        run2.log_param("fit_intercept", False)
        run2.log_metric("rmse", 4.0)
        run2.log_model(LinearRegression(fit_intercept=False).fit(x, y), "price", input_example=x.head())
    assert [v.version for v in dev.models.versions("price")] == [1, 2] and first.description == "v1"
    assert [m.name for m in dev.models.list()] == ["price"]

    moved = dev.models.set_alias("price/2", "champion", reason="lower rmse")
    assert moved.aliases == ["champion"] and dev.models.version("price@champion").version == 2
    loaded = dev.models.load("price@champion")
    assert isinstance(loaded, keel.LoadedModel) and loaded.ref == "price/2"
    np.testing.assert_allclose(loaded.predict(x.head(7)), second_fit(x, y).predict(x.head(7)))

    with pytest.raises(PermissionDenied):
        dev.models.approve("price/2", reason="looks fine to me")
    with pytest.raises(PermissionDenied):  # no approval yet, whoever asks
        approver.models.promote("price/2", "production")
    approval = approver.models.approve("price/2", reason="holdout rmse checked")
    assert isinstance(approval, keel.models.model.Approval) and approval.approved_by == "alice"
    promoted = approver.models.promote("price/2", "production", reason="release 1")
    assert "production" in promoted.aliases and dev.models.get("price").aliases["production"] == 2

    card = dev.models.update_card("price", purpose="nightly price", owner="pricing")
    assert card.version == 1 and dev.models.card("price").card["owner"] == "pricing"
    shown = dev.models.show("price@production")
    assert shown["version"] == 2 and shown["approvals"][0]["approved_by"] == "alice"
    diff = dev.models.diff("price/1", "price/2")
    assert diff["metrics"]["rmse"]["delta"] == -1.0 and "fit_intercept" in diff["params"]
    assert [e.alias for e in dev.models.alias_history("price")] == ["champion", "production"]
    audit = {e.action: e.actor for e in dev.audit.list(target="model:price/2")}
    assert audit["model.approve"] == "alice" and audit["model.promote"] == "alice"
    assert f"run:{run2.id}" in dev.lineage.upstream("model:price/2").refs()
    assert "model:price/2" in dev.lineage.downstream(f"run:{run2.id}").refs()


def second_fit(x: pd.DataFrame, y: pd.Series) -> LinearRegression:
    return LinearRegression(fit_intercept=False).fit(x, y)


# -- data ------------------------------------------------------------------------------------------------

def test_data_ingest_read_profile_and_split(open_as: Opener, tmp_path: Path) -> None:
    ws = open_as("developer")
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({
        "id": np.arange(300), "rooms": rng.integers(1, 6, 300), "price": rng.normal(100, 20, 300).round(2),
        "city": rng.choice(["paris", "lyon", None], 300),
        "listed_at": pd.date_range("2024-01-01", periods=300, freq="D", tz="UTC"),
    })
    path = tmp_path / "listings.parquet"
    frame.to_parquet(path, index=False)
    result = ws.data.ingest(path, "listings", time_column="listed_at")
    assert isinstance(result, keel.IngestResult) and isinstance(result.version, keel.TableVersion)
    assert result.rows_written == 300 and result.version.version == 0
    ws.data.ingest(frame.head(10), "listings")  # a frame works too (sent as Parquet)
    assert [v.version for v in ws.data.history("listings")] == [1, 0]
    assert [t.name for t in ws.data.tables()] == ["listings"]
    assert ws.data.version("listings@0").row_count == 300

    read = ws.data.read("listings@0")
    pd.testing.assert_frame_equal(read, frame)
    some = ws.data.read("listings@0", columns=["id", "price"], where="rooms > 3")
    assert list(some.columns) == ["id", "price"] and len(some) == (frame.rooms > 3).sum()
    profile = ws.data.profile("listings@0")
    assert profile["rows"] == 300

    split = ws.data.split("listings@0", target="price", time_column="listed_at", name="by-time")
    assert isinstance(split, keel.SplitInfo) and split.ref == "split:by-time@1"
    assert ws.data.split_info("by-time").counts == split.counts
    assert "table:listings@0" in ws.lineage.upstream(split.ref).refs()


def test_bad_data_raises_the_same_errors_with_the_report(open_as: Opener, team: Team, tmp_path: Path) -> None:
    ws = open_as("developer")
    good = tmp_path / "good.csv"
    good.write_text("id,price\n1,10\n2,20\n")
    ws.data.ingest(good, "prices")
    team.ws.data.set_contract("prices", {"columns": {"price": {"dtype": "float64", "min": 0}}})
    bad = tmp_path / "bad.csv"
    bad.write_text("id,price\n3,30\n4,-5\n")
    with pytest.raises(ValidationFailed) as failed:
        ws.data.ingest(bad, "prices")
    assert failed.value.report.failed_rows == 1 and failed.value.report.failures[0].column == "price"
    quarantined = ws.data.ingest(bad, "prices", on_bad_rows="quarantine")
    assert (quarantined.rows_written, quarantined.rows_quarantined) == (1, 1)
    ws.data.ingest(good, "raw")
    changed = tmp_path / "changed.csv"
    changed.write_text("id,cost\n3,30\n")
    with pytest.raises(SchemaMismatch):
        ws.data.ingest(changed, "raw")
    with pytest.raises(NotFound):
        ws.data.version("nope")
    with pytest.raises(InvalidRef):
        ws.data.version("prices@@3")
