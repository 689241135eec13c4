"""XGBoost in its own UBJSON format (no pickle); the scikit-learn wrappers keep their classes in it."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from keel.errors import TamperedPackage
from keel.models.flavors.base import class_name

__all__ = ["XGBoostFlavor"]

_WRAPPERS = ("XGBRegressor", "XGBClassifier", "XGBRanker", "XGBRFRegressor", "XGBRFClassifier")


class XGBoostFlavor:
    name = "xgboost"
    model_file = "model.ubj"
    automatic = True

    def handles(self, model: Any) -> bool:
        return class_name(model).startswith("xgboost.")

    def save(self, model: Any, folder: Path) -> dict[str, Any]:
        model.save_model(str(folder / self.model_file))
        wrapper = type(model).__name__
        return {"wrapper": wrapper if wrapper in _WRAPPERS else "Booster"}

    def load(self, data: bytes, metadata: dict[str, Any], *, trusted: bool) -> Any:
        xgboost = importlib.import_module("xgboost")
        wrapper = metadata.get("wrapper", "Booster")
        if wrapper != "Booster" and wrapper not in _WRAPPERS:
            raise TamperedPackage(f"unknown XGBoost wrapper {wrapper!r} in the manifest")
        model = getattr(xgboost, wrapper)()
        try:
            model.load_model(bytearray(data))
        except xgboost.core.XGBoostError as exc:
            raise TamperedPackage(f"the XGBoost model file cannot be read: {exc}") from None
        return _BoosterModel(model, xgboost) if wrapper == "Booster" else model

    def as_predictor(self, model: Any) -> Any:
        if type(model).__name__ in _WRAPPERS:
            return model
        return _BoosterModel(model, importlib.import_module("xgboost"))

    def version(self) -> str:
        import xgboost

        return xgboost.__version__


class _BoosterModel:
    """``predict(frame)`` for a raw Booster, which itself wants a DMatrix."""

    def __init__(self, booster: Any, xgboost: Any) -> None:
        self.booster, self._xgboost = booster, xgboost

    def predict(self, frame: Any) -> Any:
        return self.booster.predict(self._xgboost.DMatrix(frame))
