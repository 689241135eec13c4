"""Any object with ``predict``, stored as a pickle: loadable only with ``trusted=True``.

A pickle runs code when it is loaded, so this flavor is never picked automatically and never loaded
without the caller saying they trust the package. Even then, the package reader has already checked the
bytes against the hashes recorded at registration: a pickle swapped in afterwards is refused unread.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from keel.errors import UnsupportedModel, UntrustedModel

__all__ = ["PythonFlavor"]


class PythonFlavor:
    name = "python"
    model_file = "model.pkl"
    automatic = False

    def handles(self, model: Any) -> bool:
        return callable(getattr(model, "predict", None))

    def save(self, model: Any, folder: Path) -> dict[str, Any]:
        try:
            data = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            raise UnsupportedModel(f"the model cannot be pickled: {exc}") from None
        (folder / self.model_file).write_bytes(data)
        return {}

    def load(self, data: bytes, metadata: dict[str, Any], *, trusted: bool) -> Any:
        if not trusted:
            raise UntrustedModel(
                "this package holds a Python pickle, which runs code when loaded; load it with trusted=True "
                "(CLI: --trusted) only if you trust whoever registered it")
        return pickle.loads(data)

    def as_predictor(self, model: Any) -> Any:
        return model

    def version(self) -> str:
        import platform

        return platform.python_version()
