"""A loaded model: predicts only on frames that fit its signature."""

from __future__ import annotations

from typing import Any

import numpy as np

from keel.errors import InvalidInput
from keel.models.package import Manifest
from keel.models.signature import Signature, check_frame

__all__ = ["LoadedModel"]


class LoadedModel:
    """``predict(frame)`` after checking the frame against the signature; ``.model`` is the native object."""

    def __init__(self, ref: str, manifest: Manifest, model: Any, *, extra: str = "drop") -> None:
        self.ref, self.manifest, self.model, self.extra = ref, manifest, model, extra
        self.signature: Signature = manifest.signature_obj

    @property
    def flavor(self) -> str:
        return self.manifest.flavor

    def prepare(self, data: Any, *, extra: str | None = None) -> Any:
        """The frame the model will see (signature columns, training order, compatible types)."""
        return check_frame(data, self.signature, extra=extra or self.extra)

    def predict(self, data: Any, *, extra: str | None = None) -> np.ndarray:
        frame = self.prepare(data, extra=extra)
        return np.asarray(self.model.predict(frame))

    def predict_proba(self, data: Any, *, extra: str | None = None) -> np.ndarray:
        if not hasattr(self.model, "predict_proba"):
            raise InvalidInput(f"{self.ref} ({self.manifest.model_class}) has no predict_proba")
        return np.asarray(self.model.predict_proba(self.prepare(data, extra=extra)))

    def __repr__(self) -> str:
        return f"LoadedModel({self.ref!r}, flavor={self.flavor!r}, class={self.manifest.model_class!r})"
