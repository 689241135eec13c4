"""Warm starts (keel.pipelines.warm): a model that can continue trains further from the serving model, one that
cannot is fitted from scratch, and the choice is said in words."""

from __future__ import annotations

import numpy as np
from sklearn.base import clone
from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor
from sklearn.linear_model import Ridge, SGDRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from keel.pipelines.warm import PartialFit, warm_start


def data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(300, 3))
    return X, X @ np.array([1.0, -2.0, 0.5]) + rng.normal(0, 0.1, 300)


def test_boosting_in_a_pipeline_continues_with_more_trees() -> None:
    X, y = data()
    fitted = make_pipeline(StandardScaler(), HistGradientBoostingRegressor(max_iter=20, early_stopping=False)).fit(X, y)
    trees = fitted[-1].n_iter_
    model, how, why = warm_start(fitted, clone(fitted))
    assert how == "warm_start" and "max_iter 20 -> 30" in why and "fitted again" in why
    model.fit(*data(1))
    assert model[-1].n_iter_ == 30 and trees == 20  # ten trees added on the new data, the first twenty kept


def test_a_forest_adds_estimators_and_sgd_uses_partial_fit() -> None:
    X, y = data()
    forest = RandomForestRegressor(n_estimators=10, random_state=0).fit(X, y)
    model, how, _ = warm_start(forest, clone(forest))
    assert how == "warm_start" and model.fit(X, y).n_estimators == 15 and len(model.estimators_) == 15
    sgd = SGDRegressor(random_state=0, max_iter=100, tol=None).fit(X, y)
    model, how, why = warm_start(sgd, clone(sgd))
    assert model is sgd and how == "warm_start" and model.warm_start and model.max_iter == 150, why


def test_partial_fit_only_is_wrapped_and_anything_else_starts_from_scratch() -> None:
    X, y = data()

    class Online:
        def partial_fit(self, X, y):
            self.seen = getattr(self, "seen", 0) + len(y)
            return self

        def predict(self, X):
            return np.zeros(len(X))

    online = Online().partial_fit(X, y)
    model, how, why = warm_start(online, Online())
    assert isinstance(model, PartialFit) and how == "warm_start" and "partial_fit" in why
    model.fit(X, y)
    assert online.seen == 600 and model.predict(X).shape == (300,)
    ridge = Ridge().fit(X, y)
    fresh = Ridge()
    model, how, why = warm_start(ridge, fresh)
    assert model is fresh and how == "from_scratch" and "cannot continue" in why
