"""Feature importance: built-in, permutation (as scikit-learn computes it), SHAP when installed, and the
rules that flag removal candidates and correlated pairs."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestRegressor
from sklearn.inspection import permutation_importance
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from keel.errors import InvalidInput
from keel.tracking.importance import correlated_pairs, importance

FEATURES = ["signal", "weak", "noise", "signal_copy"]


@pytest.fixture(scope="module")
def data() -> dict[str, pd.DataFrame]:
    """y = 4·signal + weak + noise-free-ish error; noise is pure noise; signal_copy duplicates signal."""
    rng = np.random.default_rng(7)
    n = 400
    frame = pd.DataFrame({"signal": rng.normal(size=n), "weak": rng.normal(size=n), "noise": rng.normal(size=n),
                          "colour": rng.choice(["red", "blue"], n)})
    frame["signal_copy"] = frame["signal"] * 3 + rng.normal(scale=0.01, size=n)
    frame["y"] = 4 * frame["signal"] + frame["weak"] + np.where(frame["colour"] == "red", 1.0, 0.0) \
        + rng.normal(scale=0.3, size=n)
    return {"train": frame[:300].reset_index(drop=True), "validation": frame[300:].reset_index(drop=True)}


def _run(model: object, data: dict[str, pd.DataFrame], **options: object):
    return importance(None, model, data, label="y", shap=options.pop("shap", False), **options)


def test_noise_is_a_removal_candidate_and_a_copy_is_a_correlated_pair(data: dict[str, pd.DataFrame]) -> None:
    model = LinearRegression().fit(data["train"][FEATURES], data["train"]["y"])
    report = _run(model, data, features=FEATURES)
    assert "noise" in report.removal_candidates
    assert not {"weak"} & set(report.removal_candidates)
    (a, b, r), = report.correlated_pairs
    assert {a, b} == {"signal", "signal_copy"} and r > 0.99
    table = report.to_frame()
    assert list(table.columns[:2]) == ["permutation_mean", "permutation_std"]
    assert table.loc["noise", "removal_candidate"] and not table.loc["weak", "removal_candidate"]
    assert report.builtin == pytest.approx(dict(zip(FEATURES, np.abs(model.coef_), strict=True)))
    assert report.builtin_kind == "mean |coef_|"
    assert "removal candidates" in report.summary()


def test_permutation_importance_is_sklearns_on_the_validation_part(data: dict[str, pd.DataFrame]) -> None:
    model = RandomForestRegressor(n_estimators=20, random_state=0).fit(data["train"][FEATURES], data["train"]["y"])
    report = _run(model, data, features=FEATURES, n_repeats=4, seed=3)
    expected = permutation_importance(model, data["validation"][FEATURES], data["validation"]["y"], n_repeats=4,
                                      random_state=3)
    assert [report.permutation_mean[f] for f in FEATURES] == pytest.approx(expected.importances_mean)
    assert [report.permutation_std[f] for f in FEATURES] == pytest.approx(expected.importances_std)
    assert report.builtin == pytest.approx(dict(zip(FEATURES, model.feature_importances_, strict=True)))
    assert report.part == "validation" and report.rows == len(data["validation"])
    assert report.to_frame().index[0] in ("signal", "signal_copy")


def test_pipelines_name_builtin_importance_by_what_the_last_step_sees(data: dict[str, pd.DataFrame]) -> None:
    scaled = make_pipeline(StandardScaler(), LinearRegression()).fit(data["train"][FEATURES], data["train"]["y"])
    report = _run(scaled, data, features=FEATURES)
    assert set(report.builtin) == set(FEATURES) and "builtin" in report.to_frame()
    columns = ["signal", "weak", "colour"]
    encoded = make_pipeline(ColumnTransformer([("num", StandardScaler(), ["signal", "weak"]),
                                               ("cat", OneHotEncoder(), ["colour"])]), LinearRegression())
    encoded.fit(data["train"][columns], data["train"]["y"])
    report = _run(encoded, data)  # features come from the fitted model
    assert report.features == columns
    assert set(report.builtin) == {"num__signal", "num__weak", "cat__colour_blue", "cat__colour_red"}
    assert "builtin" not in report.to_frame()  # transformed names are not input features
    assert report.permutation_mean["colour"] > 0.01 and report.correlated_pairs == []


def test_classifiers_and_numpy_input(data: dict[str, pd.DataFrame]) -> None:
    X = {p: f[FEATURES].to_numpy() for p, f in data.items()}
    y = {p: (f["y"] > 0).to_numpy() for p, f in data.items()}
    model = LogisticRegression().fit(X["train"], y["train"])
    report = importance(None, model, {p: (X[p], y[p]) for p in X}, shap=False)
    assert report.features == ["x0", "x1", "x2", "x3"] and "accuracy" in report.scoring
    assert "x2" in report.removal_candidates  # noise, by position


def test_correlated_pairs_match_a_brute_force_check() -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(200, 6)), columns=list("abcdef"))
    frame["g"] = frame["a"] * -2 + rng.normal(scale=0.05, size=200)
    frame["h"] = frame["b"] + rng.normal(scale=1.0, size=200)  # r ≈ 0.7: not flagged
    frame["text"] = "x"
    frame["flat"] = 1.0  # constant: no correlation is defined, never flagged
    pairs = correlated_pairs(frame, 0.9)
    expected = []
    numeric = [c for c in frame.columns if c != "text"]
    for i, a in enumerate(numeric):
        for b in numeric[i + 1:]:
            r = np.corrcoef(frame[a], frame[b])[0, 1] if frame[a].std() and frame[b].std() else np.nan
            if abs(np.nan_to_num(r)) >= 0.9:
                expected.append((a, b))
    assert [(a, b) for a, b, _ in pairs] == expected == [("a", "g")]
    assert pairs[0][2] == pytest.approx(np.corrcoef(frame["a"], frame["g"])[0, 1])


def test_without_shap_it_is_left_out_or_refused(data: dict[str, pd.DataFrame], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "shap", None)  # import shap raises ImportError
    model = LinearRegression().fit(data["train"][FEATURES], data["train"]["y"])
    report = importance(None, model, data, label="y", features=FEATURES)  # shap=None: use it if installed
    assert report.shap is None and any("shap is not installed" in n for n in report.notes)
    with pytest.raises(InvalidInput, match=r"keel\[explain\]"):
        importance(None, model, data, label="y", features=FEATURES, shap=True)


def test_shap_values_when_installed(data: dict[str, pd.DataFrame]) -> None:
    pytest.importorskip("shap", reason="shap is the optional explain extra (pip install 'keel[explain]')")
    forest = RandomForestRegressor(n_estimators=20, random_state=0).fit(data["train"][FEATURES], data["train"]["y"])
    report = _run(forest, data, features=FEATURES, shap=True)  # TreeExplainer
    assert set(report.shap) == set(FEATURES) and report.shap["noise"] < report.shap["weak"]
    pipe = make_pipeline(StandardScaler(), LinearRegression()).fit(data["train"][FEATURES], data["train"]["y"])
    report = _run(pipe, data, features=FEATURES, shap=True)  # the model-agnostic explainer
    assert report.shap["signal"] > report.shap["weak"] > report.shap["noise"]
    assert "shap_mean_abs" in report.to_frame()


def test_bad_input(data: dict[str, pd.DataFrame]) -> None:
    model = LinearRegression().fit(data["train"][FEATURES], data["train"]["y"])
    with pytest.raises(InvalidInput, match="not fitted"):
        _run(LinearRegression(), data, features=FEATURES)
    with pytest.raises(InvalidInput, match="correlation_threshold"):
        _run(model, data, correlation_threshold=1.5)
    with pytest.raises(InvalidInput, match="has no test part"):
        _run(model, data, part="test")
    with pytest.raises(InvalidInput, match="unknown part 'holdout'"):
        _run(model, data, part="holdout")
