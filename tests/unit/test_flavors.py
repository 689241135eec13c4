"""The flavor contract, checked for every flavor in ``FLAVORS`` (scikit-learn's ``check_estimator`` idea).

For each flavor and a small fitted model of its kind: ``save`` writes exactly ``model_file``, the metadata
is plain YAML, ``load`` of the bytes gives identical predictions (and probabilities and classes for
classifiers), ``handles`` says yes to its models and no to others, and ``flavor_for`` picks the native
format first, never picks a plain object automatically, and explains itself when nothing fits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightgbm
import numpy as np
import pandas as pd
import pytest
import xgboost
import yaml
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from helpers_models import NoPredict, ToyModel, regression_frame
from keel.errors import InvalidInput, UnsupportedModel, UntrustedModel
from keel.models.flavors import FLAVORS, flavor_for, flavor_named
from keel.models.flavors.sklearn import trusted_by_keel

ROWS = 60


def _mixed_frame(seed: int = 0) -> pd.DataFrame:
    """Numbers with gaps, integers, strings and a category column: the demo's kind of table."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "accommodates": rng.integers(1, 7, ROWS),
        "bathrooms": rng.choice([1.0, 1.5, 2.0, np.nan], ROWS),
        "neighbourhood": rng.choice(["Mitte", "Kreuzberg", "Pankow"], ROWS),
        "room_type": pd.Categorical(rng.choice(["entire", "private", "shared"], ROWS)),
    })
    return frame


def _price(frame: pd.DataFrame) -> np.ndarray:
    rng = np.random.default_rng(1)
    base = frame["accommodates"] * 20 + frame["neighbourhood"].map({"Mitte": 40, "Kreuzberg": 25, "Pankow": 10})
    return (base + rng.normal(scale=5, size=len(frame))).to_numpy(dtype="float64")


def _tier(frame: pd.DataFrame) -> np.ndarray:
    """String class labels, three of them."""
    return np.select([_price(frame) < 70, _price(frame) < 120], ["cheap", "mid"], "pricey")


def _numeric() -> tuple[pd.DataFrame, np.ndarray]:
    return regression_frame(ROWS)


def _sk_forest() -> tuple[Any, pd.DataFrame]:
    from sklearn.ensemble import RandomForestRegressor

    X, y = _numeric()
    return RandomForestRegressor(n_estimators=5, max_depth=3, random_state=0).fit(X, y), X


def _sk_logistic() -> tuple[Any, pd.DataFrame]:
    frame = _mixed_frame()
    X = frame[["accommodates"]].assign(bathrooms=frame["bathrooms"].fillna(1.0))
    return LogisticRegression(max_iter=500).fit(X, _tier(frame)), X


def _sk_pipeline() -> tuple[Any, pd.DataFrame]:
    X = _mixed_frame()
    prep = ColumnTransformer([
        ("num", Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]),
         ["accommodates", "bathrooms"]),
        ("cat", Pipeline([("impute", SimpleImputer(strategy="most_frequent")),
                          ("onehot", OneHotEncoder(handle_unknown="ignore"))]), ["neighbourhood", "room_type"]),
    ])
    return Pipeline([("prep", prep), ("model", LogisticRegression(max_iter=500))]).fit(X, _tier(X)), X


def _lgb_regressor() -> tuple[Any, pd.DataFrame]:
    frame = _mixed_frame()
    X = frame.drop(columns=["neighbourhood"])  # keeps a pandas category column: LightGBM's own kind
    model = lightgbm.LGBMRegressor(n_estimators=8, num_leaves=4, min_child_samples=5, verbose=-1)
    return model.fit(X, _price(frame)), X


def _lgb_classifier() -> tuple[Any, pd.DataFrame]:
    X = _mixed_frame()[["accommodates", "bathrooms"]]
    return lightgbm.LGBMClassifier(n_estimators=8, num_leaves=4, min_child_samples=5, verbose=-1).fit(
        X, _tier(_mixed_frame())), X


def _lgb_binary() -> tuple[Any, pd.DataFrame]:
    X = _mixed_frame()[["accommodates", "bathrooms"]]
    labels = np.where(_mixed_frame()["accommodates"] > 3, "large", "small")
    return lightgbm.LGBMClassifier(n_estimators=8, num_leaves=4, min_child_samples=5, verbose=-1).fit(X, labels), X


def _lgb_booster() -> tuple[Any, pd.DataFrame]:
    X, y = _numeric()
    data = lightgbm.Dataset(X, y, params={"verbose": -1})
    return lightgbm.train({"objective": "regression", "num_leaves": 4, "min_data_in_leaf": 5, "verbose": -1},
                          data, num_boost_round=8), X


def _xgb_regressor() -> tuple[Any, pd.DataFrame]:
    X, y = _numeric()
    return xgboost.XGBRegressor(n_estimators=8, max_depth=3).fit(X, y), X


def _xgb_classifier() -> tuple[Any, pd.DataFrame]:
    X, y = _numeric()
    return xgboost.XGBClassifier(n_estimators=8, max_depth=3).fit(X, (y > np.median(y)).astype(int)), X


def _xgb_booster() -> tuple[Any, pd.DataFrame]:
    X, y = _numeric()
    return xgboost.train({"max_depth": 3}, xgboost.DMatrix(X, y), num_boost_round=8), X


def _toy() -> tuple[Any, pd.DataFrame]:
    X, _ = _numeric()
    return ToyModel(), X


@dataclass(frozen=True)
class Case:
    id: str
    flavor: str
    build: Callable[[], tuple[Any, pd.DataFrame]]
    classes: tuple[Any, ...] | None = None  # expected classes_ of a classifier


CASES = [
    Case("sklearn-forest", "sklearn", _sk_forest),
    Case("sklearn-logistic-str-labels", "sklearn", _sk_logistic, ("cheap", "mid", "pricey")),
    Case("sklearn-pipeline-mixed", "sklearn", _sk_pipeline, ("cheap", "mid", "pricey")),
    Case("lightgbm-regressor-category", "lightgbm", _lgb_regressor),
    Case("lightgbm-classifier-str-labels", "lightgbm", _lgb_classifier, ("cheap", "mid", "pricey")),
    Case("lightgbm-binary-str-labels", "lightgbm", _lgb_binary, ("large", "small")),
    Case("lightgbm-booster", "lightgbm", _lgb_booster),
    Case("xgboost-regressor", "xgboost", _xgb_regressor),
    Case("xgboost-classifier", "xgboost", _xgb_classifier, (0, 1)),
    Case("xgboost-booster", "xgboost", _xgb_booster),
    Case("python-toy", "python", _toy),
]
BY_ID = {c.id: c for c in CASES}


@pytest.fixture(scope="module")
def fitted() -> dict[str, tuple[Any, pd.DataFrame]]:
    """Every case's model, fitted once for the module."""
    return {case.id: case.build() for case in CASES}


def _roundtrip(flavor: Any, model: Any, folder: Path) -> tuple[Any, dict[str, Any]]:
    folder.mkdir()
    metadata = flavor.save(model, folder)
    data = (folder / flavor.model_file).read_bytes()
    return flavor.load(data, metadata, trusted=True), metadata


def test_every_flavor_is_exercised_here() -> None:
    assert {c.flavor for c in CASES} == {f.name for f in FLAVORS}


def test_flavors_declare_the_contract() -> None:
    names = [f.name for f in FLAVORS]
    files = [f.model_file for f in FLAVORS]
    assert len(set(names)) == len(names) and len(set(files)) == len(files)
    for flavor in FLAVORS:
        assert flavor_named(flavor.name) is flavor
        assert isinstance(flavor.automatic, bool)
        assert "/" not in flavor.model_file and flavor.model_file not in ("keel-model.yaml", "requirements.txt")
        assert isinstance(flavor.version(), str) and flavor.version()
    assert [f.name for f in FLAVORS if not f.automatic] == ["python"], "only python (pickle) is opt-in"
    with pytest.raises(InvalidInput, match="known: "):
        flavor_named("pickle")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_save_then_load_predicts_identically(case: Case, fitted: dict, tmp_path: Path) -> None:
    model, X = fitted[case.id]
    flavor = flavor_named(case.flavor)
    loaded, metadata = _roundtrip(flavor, model, tmp_path / "pkg")

    assert sorted(p.name for p in (tmp_path / "pkg").iterdir()) == [flavor.model_file]
    assert yaml.safe_load(yaml.safe_dump(metadata)) == metadata, "metadata must be plain YAML for the manifest"
    expected = model.predict(xgboost.DMatrix(X)) if case.id == "xgboost-booster" else model.predict(X)
    actual = loaded.predict(X)
    np.testing.assert_array_equal(np.asarray(actual), np.asarray(expected))
    if case.classes is not None:
        assert list(loaded.classes_) == list(case.classes)
        assert list(np.asarray(loaded.classes_)) == list(model.classes_)
        assert set(np.asarray(actual).tolist()) <= set(case.classes)
        np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
        assert loaded.predict_proba(X).shape == (len(X), len(case.classes))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_the_chosen_flavor_handles_its_models(case: Case, fitted: dict) -> None:
    model, _ = fitted[case.id]
    assert flavor_named(case.flavor).handles(model)
    if case.flavor == "python":
        with pytest.raises(UnsupportedModel, match="flavor='python'"):
            flavor_for(model)
        assert flavor_for(model, "python").name == "python"
    else:
        assert flavor_for(model).name == case.flavor, "native formats win over skops and pickle"
    assert flavor_named("python").handles(model), "python takes anything with predict, but only when asked"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_other_libraries_flavors_refuse_the_model(case: Case, fitted: dict) -> None:
    model, _ = fitted[case.id]
    library_flavors = {"lightgbm", "xgboost"}
    for name in library_flavors - {case.flavor}:
        assert not flavor_named(name).handles(model), name
        with pytest.raises(UnsupportedModel, match=f"the {name} flavor cannot package"):
            flavor_for(model, name)
    if case.flavor == "python" or case.id.endswith("booster"):
        assert not flavor_named("sklearn").handles(model), "a raw booster or plain object is not an estimator"


@pytest.mark.parametrize("plain", [object(), {"predict": 1}, ToyModel(), NoPredict(), lambda X: X, np.zeros(3)],
                         ids=["object", "dict", "toy-with-predict", "no-predict", "function", "array"])
def test_automatic_flavors_never_pick_a_plain_object(plain: Any) -> None:
    for flavor in FLAVORS:
        if flavor.automatic:
            assert not flavor.handles(plain), (flavor.name, plain)
    with pytest.raises(UnsupportedModel) as info:
        flavor_for(plain)
    cls = type(plain)
    assert f"{cls.__module__}.{cls.__qualname__}" in info.value.message
    assert "flavor='python'" in info.value.message and "trusted=True" in info.value.message


def test_python_flavor_needs_a_predict_method() -> None:
    with pytest.raises(UnsupportedModel, match=r"helpers_models\.NoPredict"):
        flavor_for(NoPredict(), "python")


def test_python_flavor_refuses_to_load_without_trust(tmp_path: Path) -> None:
    flavor = flavor_named("python")
    flavor.save(ToyModel(), tmp_path)
    with pytest.raises(UntrustedModel, match="trusted=True"):
        flavor.load((tmp_path / flavor.model_file).read_bytes(), {}, trusted=False)


def test_python_flavor_reports_an_unpicklable_model(tmp_path: Path) -> None:
    model = ToyModel()
    model.hook = lambda: None  # lambdas do not pickle
    with pytest.raises(UnsupportedModel, match="cannot be pickled"):
        flavor_named("python").save(model, tmp_path)
    assert not (tmp_path / "model.pkl").exists()


@pytest.mark.parametrize("name, trusted", [
    ("sklearn.tree._tree.Tree", True),
    ("numpy.dtype", True),
    ("scipy.sparse._csr.csr_matrix", True),
    ("builtins.eval", False),
    ("posix.system", False),
    ("helpers_models.MarkerEstimator", False),
    ("sklearnx.evil.Thing", False),
    ("numpy.__main__.x", False),
    ("sklearn.<lambda>", False),
    ("__main__.Model", False),
])
def test_keel_trusts_types_by_library_not_by_a_list_in_the_file(name: str, trusted: bool) -> None:
    assert trusted_by_keel(name) is trusted


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_registry_roundtrip_through_the_package(case: Case, fitted: dict, ws: Any) -> None:
    """The same contract end to end: register, verify hashes, load, predict through the signature check."""
    model, X = fitted[case.id]
    options: dict[str, Any] = {"flavor": "python"} if case.flavor == "python" else {}
    if case.id == "xgboost-booster":  # a raw Booster predicts on a DMatrix only, so give the signature
        from keel.models.signature import infer_signature

        options["signature"] = infer_signature(X)
    else:
        options["input_example"] = X
    version = ws.models.register(model, "m", **options)
    assert version.flavor == case.flavor
    loaded = ws.models.load("m/1", trusted=case.flavor == "python")
    assert loaded.flavor == case.flavor
    expected = model.predict(xgboost.DMatrix(X)) if case.id == "xgboost-booster" else model.predict(X)
    shuffled = X[X.columns[::-1]].assign(request_id=range(len(X)))  # other order, an extra id column
    np.testing.assert_array_equal(loaded.predict(shuffled), np.asarray(expected))
    if case.classes is not None:
        np.testing.assert_array_equal(loaded.predict_proba(shuffled), model.predict_proba(X))
