"""Register one tiny model COUNT times under NAME from one run, the instant the test says go.

usage: register_models.py WORKSPACE READY_FILE START_FILE NAME COUNT
Prints ``RUN <id>`` and then ``V <number>`` for each version the registry handed out, in order.
Exit code 0 on success; any failure prints its traceback to stderr and exits non-zero.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pandas as pd
from sklearn.linear_model import LinearRegression

import keel

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _barrier import wait_for_start

FRAME = pd.DataFrame({"a": np.arange(10), "b": np.linspace(0.0, 1.0, 10)})
TARGET = FRAME["a"] * 2.0 + FRAME["b"]


def main(workspace: str, ready: str, start: str, name: str, count: str) -> None:
    model = LinearRegression().fit(FRAME, TARGET)
    ws = keel.open(workspace)
    try:
        with ws.runs.start("concurrency", name=f"worker-{os.getpid()}") as run:
            print(f"RUN {run.id}", flush=True)
            wait_for_start(ready, start)
            for _ in range(int(count)):
                version = run.log_model(model, name, input_example=FRAME)
                print(f"V {version.version}", flush=True)
    finally:
        ws.close()


if __name__ == "__main__":
    main(*sys.argv[1:6])
