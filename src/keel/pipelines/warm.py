"""Warm starts: train the serving model further on new data instead of from scratch, when the model can.

- an estimator with ``warm_start`` (gradient boosting, forests, SGD, MLP, linear models with iterative solvers):
  the fitted model is loaded, ``warm_start`` set, and its iteration budget raised by ``grow`` (boosting adds trees
  on the new data; a forest adds estimators);
- an estimator with ``partial_fit`` but no ``warm_start`` (naive Bayes, MiniBatchKMeans, PassiveAggressive): its
  ``partial_fit`` is called on the new data (SGD has ``warm_start`` and goes the first way);
- anything else is fitted from scratch, and the reason is recorded beside the choice.

A scikit-learn Pipeline is looked into: its last step decides. Its earlier steps (encoders, scalers) are fitted
again on the new data, which a warm-started tree ensemble tolerates only when categories keep their codes: the
detail says so.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ITERATION_PARAMS", "PartialFit", "warm_start"]

ITERATION_PARAMS = ("max_iter", "n_estimators")  # what a warm start raises so the model trains further


class PartialFit:
    """``fit`` as ``partial_fit`` of a fitted estimator: the training step calls ``fit`` like for any model."""

    def __init__(self, estimator: Any) -> None:
        self.estimator = estimator

    def fit(self, X: Any, y: Any = None, **kwargs: Any) -> PartialFit:
        self.estimator.partial_fit(X, y, **kwargs)
        return self

    def __getattr__(self, name: str) -> Any:  # predict, predict_proba, classes_, ... of the estimator
        return getattr(self.estimator, name)


def warm_start(fitted: Any, fresh: Any, *, grow: float = 0.5) -> tuple[Any, str, str]:
    """(estimator to fit, how: warm_start | from_scratch, why) for the fitted serving model ``fitted``; ``fresh``
    is the unfitted estimator used when a warm start is not possible."""
    last = fitted.steps[-1][1] if hasattr(fitted, "steps") else fitted
    name = type(last).__name__
    params = last.get_params(deep=False) if hasattr(last, "get_params") else {}
    if "warm_start" in params:
        grown = {}
        for param in ITERATION_PARAMS:
            value = params.get(param)
            if isinstance(value, int) and value > 0:
                grown[param] = value + max(1, int(value * grow))
        last.set_params(warm_start=True, **grown)
        told = ", ".join(f"{k} {params[k]} -> {v}" for k, v in grown.items()) or "same budget"
        pipeline = "; the pipeline's earlier steps are fitted again on the new data" if last is not fitted else ""
        return fitted, "warm_start", f"{name} continued from the serving model ({told}){pipeline}"
    if hasattr(last, "partial_fit"):
        if last is not fitted:
            return fresh, "from_scratch", f"{name} has partial_fit but sits in a Pipeline whose other steps do not"
        return PartialFit(fitted), "warm_start", f"{name}.partial_fit on the new data, from the serving model"
    return fresh, "from_scratch", f"{name} cannot continue training (no warm_start, no partial_fit)"
