"""Signatures: what a model was trained on, and the check that stands between a request and the model.

A model handed a wrong frame does not fail, it predicts garbage; ``check_frame`` must turn every kind of
mismatch into a clear ``SignatureMismatch`` (all problems at once) and hand the model exactly the frame it
was trained on: its columns, in its order, with compatible types.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LinearRegression

import keel
from keel.errors import InvalidInput, SignatureMismatch
from keel.models.signature import ColumnType, Signature, check_frame, infer_signature

TRAINING = pd.DataFrame({
    "rooms": pd.array([1, 2, 3, 4], dtype="int64"),
    "area": [30.5, 45.0, 60.25, 80.0],
    "balcony": [True, False, True, False],
    "district": ["north", "south", "north", "east"],
    "kind": pd.Categorical(["flat", "house", "flat", "flat"]),
    "listed": pd.to_datetime(["2024-01-01", "2024-02-01", "2024-03-01", "2024-04-01"], utc=True),
})


def sig(**types: str) -> Signature:
    return Signature([ColumnType(name, kind) for name, kind in types.items()])


# -- inference -------------------------------------------------------------------------------------------

def test_infer_signature_maps_pandas_types_to_keel_types() -> None:
    signature = infer_signature(TRAINING)
    assert [(c.name, c.type, c.nullable) for c in signature.inputs] == [
        ("rooms", "integer", False), ("area", "float", False), ("balcony", "boolean", False),
        ("district", "string", False), ("kind", "string", False), ("listed", "datetime", False)]
    assert signature.columns == list(TRAINING.columns)
    assert signature.outputs == [] and signature.output_shape == []


@pytest.mark.parametrize("column, expected", [
    (pd.Series([1, None], dtype="Int64"), ("integer", True)),
    (pd.Series([1.0, np.nan]), ("float", True)),
    (pd.Series([True, None], dtype="boolean"), ("boolean", True)),
    (pd.Series(["a", None]), ("string", True)),
    (pd.Series(["a", None], dtype="string"), ("string", True)),
    (pd.Series(pd.to_datetime(["2024-01-01", None])), ("datetime", True)),
    (pd.Series(np.array([1, 2], dtype="int8")), ("integer", False)),
    (pd.Series(np.array([1, 2], dtype="float32")), ("float", False)),
])
def test_infer_signature_types_and_nullability(column: pd.Series, expected: tuple[str, bool]) -> None:
    (col,) = infer_signature(pd.DataFrame({"x": column})).inputs
    assert (col.type, col.nullable) == expected


def test_infer_signature_records_the_output_shape() -> None:
    regression = infer_signature(TRAINING[["rooms"]], np.array([1.0, 2.0, 3.0, 4.0]))
    assert regression.outputs == [ColumnType("prediction", "float")] and regression.output_shape == [None]
    proba = infer_signature(TRAINING[["rooms"]], np.zeros((4, 3)))
    assert proba.output_shape == [None, 3]
    labels = infer_signature(TRAINING[["rooms"]], np.array(["a", "b", "a", "b"], dtype=object))
    assert labels.outputs[0].type == "string"


def test_infer_signature_accepts_every_table_form() -> None:
    expected = infer_signature(TRAINING[["rooms", "area"]])
    assert infer_signature(pa.table({"rooms": [1, 2], "area": [1.0, 2.0]})) == expected
    assert infer_signature({"rooms": [1, 2], "area": [1.0, 2.0]}) == expected
    assert infer_signature([{"rooms": 1, "area": 1.0}, {"rooms": 2, "area": 2.0}]) == expected


@pytest.mark.parametrize("frame, fragment", [
    (pd.DataFrame([[1, 2]], columns=["a", "a"]), "duplicate column"),
    (pd.DataFrame({"c": [1j]}), "cannot describe"),
    (pd.DataFrame({"d": pd.to_timedelta([1], unit="s")}), "cannot describe"),
])
def test_infer_signature_refuses_what_it_cannot_describe(frame: pd.DataFrame, fragment: str) -> None:
    with pytest.raises(InvalidInput, match=fragment):
        infer_signature(frame)


def test_signature_survives_its_dict_form_and_diffs() -> None:
    signature = infer_signature(TRAINING, np.zeros(4))
    assert Signature.from_dict(signature.to_dict()) == signature
    with pytest.raises(InvalidInput, match="malformed signature"):
        Signature.from_dict({"columns": []})
    other = sig(rooms="float", area="float", garden="boolean")
    assert sig(rooms="integer", area="float", district="string").diff(other) == {
        "added": ["garden"], "removed": ["district"], "changed": {"rooms": ["integer", "float"]}}


# -- check_frame -----------------------------------------------------------------------------------------

SIGNATURE = infer_signature(TRAINING)


def test_a_training_frame_passes_unchanged() -> None:
    out = check_frame(TRAINING, SIGNATURE)
    pd.testing.assert_frame_equal(out, TRAINING)


def test_missing_column_is_refused_by_name() -> None:
    with pytest.raises(SignatureMismatch, match=r"missing column.*area") as info:
        check_frame(TRAINING.drop(columns=["area"]), SIGNATURE)
    assert info.value.details["expected"] == SIGNATURE.to_dict()["inputs"]


@pytest.mark.parametrize("column, value, found", [
    ("area", ["x", "y", "z", "w"], "string"),
    ("rooms", ["1", "2", "3", "4"], "string"),
    ("balcony", [1, 0, 1, 0], "integer"),
    ("district", [1.0, 2.0, 3.0, 4.0], "float"),
    ("listed", [1, 2, 3, 4], "integer"),
    ("rooms", [True, False, True, True], "boolean"),
])
def test_wrong_dtype_is_refused(column: str, value: list, found: str) -> None:
    with pytest.raises(SignatureMismatch, match=f"column '{column}' is {found}"):
        check_frame(TRAINING.assign(**{column: value}), SIGNATURE)


def test_integers_are_accepted_and_cast_where_floats_were_trained() -> None:
    out = check_frame(TRAINING.assign(area=[30, 45, 60, 80]), SIGNATURE)
    assert out["area"].dtype == np.float64 and out["area"].tolist() == [30.0, 45.0, 60.0, 80.0]
    nullable = check_frame(TRAINING.assign(area=pd.array([30, None, 60, 80], dtype="Int64")), SIGNATURE)
    assert nullable["area"].dtype == np.float64 and np.isnan(nullable["area"][1])


def test_whole_floats_are_accepted_and_cast_where_integers_were_trained() -> None:
    out = check_frame(TRAINING.assign(rooms=[1.0, 2.0, 3.0, 4.0]), SIGNATURE)
    assert out["rooms"].dtype == np.int64 and out["rooms"].tolist() == [1, 2, 3, 4]
    gaps = check_frame(TRAINING.assign(rooms=[1.0, np.nan, 3.0, 4.0]), SIGNATURE)
    assert str(gaps["rooms"].dtype) == "Int64" and gaps["rooms"].isna().tolist() == [False, True, False, False]


@pytest.mark.parametrize("values", [[1.5, 2.0, 3.0, 4.0], [1.0, np.inf, 3.0, 4.0], [1.0, 1e300, 3.0, 4.0]],
                         ids=["fraction", "inf", "beyond-int64"])
def test_floats_that_are_not_whole_int64s_are_refused_where_integers_were_trained(values: list[float]) -> None:
    with pytest.raises(SignatureMismatch, match="column 'rooms' is float, the model was trained on integer"):
        check_frame(TRAINING.assign(rooms=values), SIGNATURE)


def test_extra_columns_are_dropped_or_refused_by_policy() -> None:
    frame = TRAINING.assign(request_id=[10, 11, 12, 13], note="x")
    assert list(check_frame(frame, SIGNATURE).columns) == SIGNATURE.columns
    assert list(check_frame(frame, SIGNATURE, extra="drop").columns) == SIGNATURE.columns
    with pytest.raises(SignatureMismatch, match=r"unexpected column.*request_id, note"):
        check_frame(frame, SIGNATURE, extra="error")
    with pytest.raises(InvalidInput, match="unknown extra-columns policy"):
        check_frame(frame, SIGNATURE, extra="keep")


def test_columns_come_back_in_training_order() -> None:
    shuffled = TRAINING[["listed", "district", "rooms", "kind", "balcony", "area"]]
    out = check_frame(shuffled, SIGNATURE)
    assert list(out.columns) == list(TRAINING.columns)
    pd.testing.assert_frame_equal(out, TRAINING)


def test_every_problem_is_reported_at_once() -> None:
    frame = TRAINING.drop(columns=["area", "district"]).assign(rooms=["a", "b", "c", "d"], balcony=[1.5] * 4,
                                                               extra=1)
    with pytest.raises(SignatureMismatch) as info:
        check_frame(frame, SIGNATURE, extra="error")
    problems = info.value.details["problems"]
    assert len(problems) == 4, problems
    text = info.value.message
    for fragment in ("missing column(s) area, district", "unexpected column(s) extra", "column 'rooms' is string",
                     "column 'balcony' is float"):
        assert fragment in text


def test_duplicate_input_columns_are_a_mismatch_not_a_crash() -> None:
    frame = pd.concat([TRAINING, TRAINING[["rooms"]]], axis=1)
    with pytest.raises(SignatureMismatch, match=r"duplicate column.*rooms"):
        check_frame(frame, SIGNATURE)


def test_an_all_missing_column_fits_a_nullable_one() -> None:
    signature = Signature([ColumnType("rooms", "integer"), ColumnType("area", "float", nullable=True)])
    out = check_frame(pd.DataFrame({"rooms": [1, 2], "area": [None, None]}), signature)
    assert out["area"].isna().all()
    with pytest.raises(SignatureMismatch, match="column 'rooms' is string"):
        check_frame(pd.DataFrame({"rooms": [None, None], "area": [1.0, 2.0]}), signature)


def test_frames_with_non_string_column_labels_keep_working() -> None:
    """A frame built from an array has labels 0, 1, ...; the signature stores '0', '1'."""
    frame = pd.DataFrame(np.arange(6.0).reshape(3, 2))
    signature = infer_signature(frame)
    assert signature.columns == ["0", "1"]
    out = check_frame(frame[[1, 0]], signature)
    assert list(out.columns) == [0, 1]
    pd.testing.assert_frame_equal(out, frame)


def test_other_table_forms_are_checked_too() -> None:
    signature = sig(rooms="integer", area="float")
    expected = pd.DataFrame({"rooms": [1, 2], "area": [1.0, 2.0]})
    for data in (pa.table({"area": [1.0, 2.0], "rooms": [1, 2]}), {"area": [1.0, 2.0], "rooms": [1, 2]},
                 [{"area": 1.0, "rooms": 1}, {"rooms": 2, "area": 2.0}]):
        pd.testing.assert_frame_equal(check_frame(data, signature).reset_index(drop=True), expected)


@pytest.mark.parametrize("data", [np.zeros((2, 2)), pd.Series([1, 2]), "rooms,area\n1,2", 42, None, [[1, 2.0]],
                                  {"rooms": 1, "area": 2.0}, {"rooms": [1, 2], "area": [1.0]}],
                         ids=["array", "series", "csv-text", "int", "none", "list-of-lists", "dict-of-scalars",
                              "ragged-dict"])
def test_non_tables_are_refused(data: Any) -> None:
    with pytest.raises(InvalidInput) as info:
        check_frame(data, sig(rooms="integer", area="float"))
    assert not isinstance(info.value, SignatureMismatch)


# -- through the registry ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[keel.Workspace, pd.DataFrame, Any]]:
    """A workspace with one linear model on numbers, registered from a run with an input example."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"rooms": rng.integers(1, 6, 50), "area": rng.normal(60, 15, 50),
                          "age": rng.integers(0, 80, 50)})
    model = LinearRegression().fit(frame, frame["rooms"] * 30 + frame["area"] - frame["age"] * 0.5)
    ws = keel.init(Path(tmp_path_factory.mktemp("sig")) / "ws")
    with ws.runs.start("price") as run:
        run.log_model(model, "price", input_example=frame)
    yield ws, frame, model
    ws.close()


def test_load_predict_raises_signature_mismatch(registered: tuple) -> None:
    ws, frame, model = registered
    loaded = ws.models.load("price/1")
    np.testing.assert_array_equal(loaded.predict(frame), model.predict(frame))
    with pytest.raises(SignatureMismatch, match=r"missing column.*age"):
        loaded.predict(frame.drop(columns=["age"]))
    with pytest.raises(SignatureMismatch, match="column 'area' is string"):
        loaded.predict(frame.assign(area=frame["area"].astype(str)))
    with pytest.raises(SignatureMismatch, match="unexpected column"):
        loaded.predict(frame.assign(id=1), extra="error")
    strict = ws.models.load("price/1", extra="error")
    with pytest.raises(SignatureMismatch, match="unexpected column"):
        strict.predict(frame.assign(id=1))
    with pytest.raises(InvalidInput):
        loaded.predict(frame.to_numpy())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(order=st.permutations(["rooms", "area", "age"]),
       extras=st.lists(st.sampled_from(["id", "note", "score", "ts"]), unique=True, max_size=4),
       rooms_as_float=st.booleans())
def test_order_extra_columns_and_lossless_casts_never_change_predictions(
        registered: tuple, order: list[str], extras: list[str], rooms_as_float: bool) -> None:
    ws, frame, model = registered
    loaded = ws.models.load("price/1")
    request = frame[order].assign(**{name: np.arange(len(frame)) for name in extras})
    if rooms_as_float:
        request = request.assign(rooms=request["rooms"].astype("float64"))
    np.testing.assert_array_equal(loaded.predict(request), model.predict(frame))


def test_check_values_refuses_missing_values_where_undeclared_and_any_infinity() -> None:
    from keel.errors import SignatureMismatch
    from keel.models.signature import ColumnType, Signature, check_values

    signature = Signature([ColumnType("a", "float", nullable=False), ColumnType("b", "float", nullable=True),
                           ColumnType("c", "string", nullable=False)])
    check_values(pd.DataFrame({"a": [1.0], "b": [None], "c": ["x"]}), signature)  # b may be missing
    for frame, problem in ((pd.DataFrame({"a": [np.nan], "b": [1.0], "c": ["x"]}), "'a' has missing"),
                           (pd.DataFrame({"a": [1.0], "b": [np.inf], "c": ["x"]}), "'b' has an infinite"),
                           (pd.DataFrame({"a": [1.0], "b": [1.0], "c": [None]}), "'c' has missing")):
        with pytest.raises(SignatureMismatch, match=problem):
            check_values(frame, signature)
