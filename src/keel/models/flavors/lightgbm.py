"""LightGBM in its own text format (no pickle): a Booster, or a scikit-learn wrapper around one.

The wrapper's extras are kept in the manifest (the classes of a classifier), so a loaded classifier
returns labels from ``predict`` and probabilities from ``predict_proba`` like the original.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from keel.errors import TamperedPackage
from keel.models.flavors.base import class_name

__all__ = ["LightGBMFlavor"]


class LightGBMFlavor:
    name = "lightgbm"
    model_file = "model.lgb.txt"
    automatic = True

    def handles(self, model: Any) -> bool:
        return class_name(model).startswith("lightgbm.")

    def save(self, model: Any, folder: Path) -> dict[str, Any]:
        booster = model.booster_ if hasattr(model, "booster_") else model
        booster.save_model(str(folder / self.model_file))
        metadata: dict[str, Any] = {"wrapper": type(model).__name__}
        if hasattr(model, "classes_"):
            metadata["classes"] = [c.item() if hasattr(c, "item") else c for c in model.classes_]
        return metadata

    def load(self, data: bytes, metadata: dict[str, Any], *, trusted: bool) -> Any:
        import lightgbm

        try:
            booster = lightgbm.Booster(model_str=data.decode("utf-8"))
        except (UnicodeDecodeError, lightgbm.basic.LightGBMError) as exc:
            raise TamperedPackage(f"the LightGBM model file cannot be read: {exc}") from None
        return _LightGBMModel(booster, metadata.get("classes"))

    def as_predictor(self, model: Any) -> Any:
        return model

    def version(self) -> str:
        import lightgbm

        return lightgbm.__version__


class _LightGBMModel:
    """predict/predict_proba over a Booster, as the scikit-learn wrapper answers them."""

    def __init__(self, booster: Any, classes: list[Any] | None) -> None:
        self.booster, self.classes_ = booster, None if classes is None else np.asarray(classes)

    def predict_proba(self, frame: Any) -> np.ndarray:
        if self.classes_ is None:
            raise AttributeError("predict_proba: this LightGBM model is not a classifier")
        raw = np.asarray(self.booster.predict(frame))
        return np.column_stack([1 - raw, raw]) if raw.ndim == 1 else raw

    def predict(self, frame: Any) -> np.ndarray:
        if self.classes_ is None:
            return np.asarray(self.booster.predict(frame))
        return self.classes_[np.argmax(self.predict_proba(frame), axis=1)]
