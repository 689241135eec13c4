"""Batch scoring (issue 7, ``ws.predictions``): a model version over a table version in bounded-memory chunks,
committed as one new version of the output table, with lineage from the input version and the model version;
bad input refused before anything is written, and a model failing half-way leaves nothing behind.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

import keel
from gates_helpers import FEATURES, RaisingModel, pipeline, toy_frame
from keel.errors import InvalidInput, InvalidRef, KeelError, NotFound, SchemaMismatch, SignatureMismatch

ROWS = 1000


@pytest.fixture
def toy(ws: keel.Workspace) -> keel.Workspace:
    """The toy table as three appends of uneven sizes (chunks cross its files), and a linear model ``toy/1``."""
    frame = toy_frame(ROWS)
    for part in (frame[:400], frame[400:750], frame[750:]):
        ws.data.ingest(part, "toy", time_column="ts")
    ws.models.register(pipeline().fit(frame[FEATURES], frame["y"]), "toy", input_example=frame[FEATURES].head())
    return ws


def _counting(monkeypatch: pytest.MonkeyPatch, cls: type, method: str) -> list[int]:
    """Rows passed to each call of ``cls.method``."""
    calls: list[int] = []
    original = getattr(cls, method)

    def counted(self: Any, X: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(len(X))
        return original(self, X, *args, **kwargs)

    monkeypatch.setattr(cls, method, counted)
    return calls


def test_a_table_is_scored_a_chunk_at_a_time_into_one_version_equal_to_predicting_it_whole(
        toy: keel.Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = toy
    expected = ws.data.read_arrow("toy", with_row_ids=True).to_pandas()
    model = ws.models.load("toy/1")
    expected["prediction"] = model.predict(expected)
    calls = _counting(monkeypatch, Pipeline, "predict")
    result = ws.predictions.score("toy@latest", input="toy", output="toy_scored", chunk_rows=100)
    assert calls == [100] * 10  # ten chunks, never more than chunk_rows rows in the model at once
    assert (result.model, result.input, result.output, result.rows, result.chunks, result.mode) == (
        "toy/1", "table:toy@2", "table:toy_scored@0", ROWS, 10, "append")
    assert result.columns == ["id", "ts", "y", "input_row_id", "prediction", "model", "scored_at"]
    assert result.seconds >= 0 and result.scored_at.tzinfo is not None
    assert result.to_dict()["output"] == "table:toy_scored@0"
    assert [v.version for v in ws.data.history("toy_scored")] == [0]  # one commit for every chunk
    out = ws.data.read("toy_scored")
    assert list(out.columns) == result.columns and len(out) == ROWS
    joined = out.merge(expected, left_on="input_row_id", right_on="_keel_row_id", suffixes=("", "_in"))
    assert len(joined) == ROWS and (joined["id"] == joined["id_in"]).all() and (joined["y"] == joined["y_in"]).all()
    np.testing.assert_allclose(joined["prediction"], joined["prediction_in"])
    assert set(out["model"]) == {"toy/1"} and out["scored_at"].nunique() == 1
    assert str(out["scored_at"].dtype) == "datetime64[us, UTC]"


def test_lineage_runs_from_the_input_version_and_the_model_version_to_the_output_version(toy: keel.Workspace) -> None:
    ws = toy
    result = ws.predictions.score("toy/1", input="toy@1", output="scored", keep=["id"], reason="nightly")
    assert result.input == "table:toy@1" and result.rows == 750  # the exact version named, not the latest
    edges = {(e.src, e.relation) for e in ws.lineage.edges("table:scored@0") if e.dst == "table:scored@0"}
    assert {("table:toy@1", "input_of"), ("model:toy/1", "predicted")} <= edges
    assert "table:scored@0" in ws.lineage.downstream("model:toy/1").refs()
    assert "table:toy@0" in ws.lineage.upstream("table:scored@0").refs()  # and on, to where the input came from
    again = ws.predictions.score("toy/1", input="toy", output="scored", keep=["id"])
    assert again.output == "table:scored@1" and ws.data.version("scored").row_count == 750 + ROWS
    entry = ws.audit.list(action="predictions.score", limit=2)[-1]
    assert (entry.actor, entry.target, entry.reason) == (ws.user, "table:scored@0", "nightly")
    assert entry.details["model"] == "toy/1" and entry.details["input"] == "table:toy@1"
    assert entry.details["rows"] == 750 and entry.details["keep"] == ["id"]


def test_a_classifier_writes_a_probability_column_per_class(ws: keel.Workspace,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    frame = toy_frame(600)
    frame["band"] = pd.cut(frame["y"], [-np.inf, 10, 25, np.inf], labels=["low", "mid", "high"]).astype(str)
    ws.data.ingest(frame, "bands")
    features = ["x1", "x2"]
    model = LogisticRegression(max_iter=500).fit(frame[features], frame["band"])
    ws.models.register(model, "band", input_example=frame[features].head())
    calls = _counting(monkeypatch, LogisticRegression, "predict_proba")
    result = ws.predictions.score("band", input="bands", output="bands_scored", chunk_rows=250, keep=["id", "band"])
    assert result.chunks == 3 and calls == [250, 250, 100]
    assert result.columns == ["id", "band", "input_row_id", "prediction", "proba_high", "proba_low", "proba_mid",
                              "model", "scored_at"]
    out = ws.data.read("bands_scored").sort_values("id").reset_index(drop=True)
    ordered = frame.sort_values("id").reset_index(drop=True)
    assert (out["prediction"] == model.predict(ordered[features])).all()
    np.testing.assert_allclose(out[["proba_high", "proba_low", "proba_mid"]].to_numpy(),
                               model.predict_proba(ordered[features]))
    np.testing.assert_allclose(out[["proba_high", "proba_low", "proba_mid"]].sum(axis=1), 1.0)


def test_bad_input_is_refused_before_anything_is_written(toy: keel.Workspace) -> None:
    ws = toy
    ws.data.ingest(pd.DataFrame({"id": [1, 2], "x1": [1.0, 2.0]}), "partial")
    ws.data.ingest(toy_frame(5).rename(columns={"y": "prediction"}), "clashing")
    with pytest.raises(NotFound):
        ws.predictions.score("nope", input="toy", output="out")
    with pytest.raises(NotFound):
        ws.predictions.score("toy/9", input="toy", output="out")
    with pytest.raises(NotFound):
        ws.predictions.score("toy/1", input="nope", output="out")
    with pytest.raises(NotFound):
        ws.predictions.score("toy/1", input="toy@7", output="out")
    with pytest.raises(SignatureMismatch, match=r"lacks the column.*x2, cat") as missing:
        ws.predictions.score("toy/1", input="partial", output="out")
    assert missing.value.details["missing"] == ["x2", "cat"]
    with pytest.raises(InvalidRef, match="output table name"):
        ws.predictions.score("toy/1", input="toy", output="../escape")
    for rows in (0, -5, 1.5, True):
        with pytest.raises(InvalidInput, match="chunk_rows"):
            ws.predictions.score("toy/1", input="toy", output="out", chunk_rows=rows)
    with pytest.raises(InvalidInput, match="mode"):
        ws.predictions.score("toy/1", input="toy", output="out", mode="replace")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match=r"no column.*nope"):
        ws.predictions.score("toy/1", input="toy", output="out", keep=["id", "nope"])
    with pytest.raises(InvalidInput, match="more than once"):
        ws.predictions.score("toy/1", input="toy", output="out", keep=["id", "id"])
    with pytest.raises(InvalidInput, match="list of column names"):
        ws.predictions.score("toy/1", input="toy", output="out", keep="id")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match=r"clash.*prediction.*keep"):
        ws.predictions.score("toy/1", input="clashing", output="out")
    with pytest.raises(InvalidInput, match="must differ from the input"):
        ws.predictions.score("toy/1", input="toy", output="toy", mode="overwrite")
    assert "out" not in [t.name for t in ws.data.tables()] and not ws.tables.exists("out")
    assert [v.version for v in ws.data.history("toy")] == [2, 1, 0]


def test_a_frame_the_model_refuses_fails_on_the_first_chunk_with_every_problem(toy: keel.Workspace) -> None:
    ws = toy
    ws.data.ingest(toy_frame(50).assign(x1=lambda f: f["x1"].astype(str)), "texts")
    with pytest.raises(SignatureMismatch, match=r"x1.*string.*float"):
        ws.predictions.score("toy/1", input="texts", output="out")
    assert not ws.tables.exists("out")


def test_a_model_failing_half_way_writes_nothing(toy: keel.Workspace) -> None:
    ws = toy
    frame = toy_frame(500)
    frame["x2"] = 0.0
    frame.loc[frame["id"].between(250, 260), "x2"] = 2.0  # RaisingModel fails on these: in the third chunk
    ws.data.ingest(frame, "trap")
    version = ws.models.register(RaisingModel(), "raiser", flavor="python", input_example=frame[FEATURES].head())
    with pytest.raises(keel.KeelError) as failed:
        ws.predictions.score(version.name, input="trap", output="fresh", chunk_rows=100, trusted=True)
    assert type(failed.value) is KeelError
    assert "raiser/1 failed on chunk 3" in failed.value.message and "x2 above 1.5" in failed.value.message
    assert "nothing was written" in failed.value.message
    assert "fresh" not in [t.name for t in ws.data.tables()] and not ws.tables.exists("fresh")
    ws.predictions.score("toy/1", input="trap", output="kept", chunk_rows=100)
    with pytest.raises(KeelError, match="chunk 3"):
        ws.predictions.score(version.name, input="trap", output="kept", chunk_rows=100, trusted=True)
    assert [v.version for v in ws.data.history("kept")] == [0] and ws.data.read_arrow("kept").num_rows == 500
    assert ws.predictions.score("toy/1", input="trap", output="fresh").output == "table:fresh@0"  # the name is free
    assert [e.target for e in ws.audit.list(action="predictions.score")] == ["table:fresh@0", "table:kept@0"]


def test_an_append_must_fit_the_output_table_and_an_overwrite_may_change_it(toy: keel.Workspace,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    ws = toy
    ws.predictions.score("toy/1", input="toy", output="out", chunk_rows=300)
    calls = _counting(monkeypatch, Pipeline, "predict")
    with pytest.raises(SchemaMismatch, match="schema differs"):
        ws.predictions.score("toy/1", input="toy", output="out", chunk_rows=300, keep=["id"])
    assert calls == [300]  # refused after the first chunk, before the rest was scored
    replaced = ws.predictions.score("toy/1", input="toy", output="out", keep=["id"], mode="overwrite")
    assert replaced.output == "table:out@1" and replaced.columns[0] == "id" and replaced.mode == "overwrite"
    assert ws.data.read_arrow("out").num_rows == ROWS and "y" not in ws.data.read_arrow("out").column_names
    assert ws.audit.list(action="data.schema_change.overwrite", limit=1)[0].target == "table:out@1"
    same = ws.predictions.score("toy/1", input="toy@0", output="out", keep=["id"], mode="overwrite")
    assert same.output == "table:out@2" and ws.data.read_arrow("out").num_rows == 400
    assert len(ws.audit.list(action="data.schema_change.overwrite")) == 1  # an unchanged schema is no change


def test_a_model_that_needs_trust_is_not_loaded_without_it(toy: keel.Workspace) -> None:
    ws = toy
    version = ws.models.register(RaisingModel(), "raiser", flavor="python", input_example=toy_frame(5)[FEATURES])
    with pytest.raises(keel.KeelError, match="trust"):
        ws.predictions.score(version.name, input="toy", output="out")
    assert not ws.tables.exists("out")


def test_the_chunks_come_from_the_data_service_reader(toy: keel.Workspace) -> None:
    ws = toy
    chunks = list(ws.data.read_batches("toy", columns=["id"], rows=300, with_row_ids=True))
    assert [c.num_rows for c in chunks] == [300, 300, 300, 100]
    assert chunks[0].column_names == ["id", "_keel_row_id"]
    assert sorted(pa.concat_tables(chunks)["id"].to_pylist()) == list(range(ROWS))  # each row once
    with pytest.raises(InvalidInput, match="at least one row"):
        ws.data.read_batches("toy", rows=0)
