"""`keel serve` as a real process for end-to-end tests, and models with a known behaviour to deploy in it.

The models are pickled by reference to this module (python flavor, served with ``--trusted``), so the server
process imports it from ``tests/`` (``start_server`` puts that folder on its PYTHONPATH)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

TESTS = Path(__file__).parent


class ConstantModel:
    """Predicts ``value`` for every row: which version answered is visible in the answer itself."""

    def __init__(self, value: float, delay_s: float = 0.0) -> None:
        self.value, self.delay_s = value, delay_s

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        if self.delay_s:
            time.sleep(self.delay_s)
        return np.full(len(X), self.value)


class FailingModel:
    """A bad candidate: predicts where it was registered, raises on every call once loaded from its package (as a
    model broken by its serving environment would)."""

    def __init__(self) -> None:
        self.loaded = False  # an instance attribute, so pickling keeps a state and __setstate__ runs

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, loaded=True)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        if self.loaded:
            raise RuntimeError("this candidate is broken")
        return np.zeros(len(X))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(root: Path, port: int, *args: str, ready_s: float = 60) -> subprocess.Popen:
    """``keel serve`` on ``port``, returned once /readyz says ready."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEEL_")}
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
    proc = subprocess.Popen([sys.executable, "-m", "keel.cli.main", "-w", str(root), "serve", "--port", str(port),
                             *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + ready_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        assert proc.poll() is None, "keel serve exited"
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"keel serve was not ready in {ready_s} s")
