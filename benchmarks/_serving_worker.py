"""The parts of benchmarks/serving.py that run in processes of their own; standard library only.

Not meant to be run by hand. ``serving.py`` writes a spec to a JSON file and runs one of:

``python _serving_worker.py load SPEC.json``
    the load generator, with keel's interpreter, pinned to the core the servers do not use: one keep-alive
    connection (a raw socket: no HTTP library between the clock and the wire), concurrency 1. It posts each
    distinct request once and hands back the parsed answers (checked by ``serving.py`` against the model's
    own predictions), warms up for ``warmup_s``, then times every request with ``perf_counter_ns`` for
    ``duration_s`` (from the first byte sent to the last byte of the answer read).

``python _serving_worker.py mlflow-save SPEC.json``
    with MLflow's interpreter (``benchmarks/.venv-mlflow-serve``): each pickled model (pickled by
    ``serving.py``, same scikit-learn version) saved as an MLflow model folder with
    ``mlflow.sklearn.save_model`` (signature from an input example), ready for ``mlflow models serve``.

Each prints one JSON document on stdout (``_worker_io.answer``).
"""

from __future__ import annotations

import gc
import json
import os
import socket
import sys
import time
from typing import Any

from _worker_io import answer


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[1] not in ("load", "mlflow-save"):
        sys.exit("usage: _serving_worker.py load|mlflow-save SPEC.json  (run by benchmarks/serving.py)")
    return answer(load if argv[1] == "load" else mlflow_save, argv[2])


# -- the load generator -------------------------------------------------------------------------------------

class Client:
    """One keep-alive HTTP/1.1 connection; ``post`` sends prepared request bytes and reads one whole answer."""

    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.create_connection((host, port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def post(self, request: bytes) -> tuple[int, bytes]:
        self.sock.sendall(request)
        data = self.buffer
        end = data.find(b"\r\n\r\n")
        while end < 0:
            data += self._recv()
            end = data.find(b"\r\n\r\n")
        head = data[:end].decode("latin-1").lower()
        status = int(head[9:12])
        rest = data[end + 4:]
        length = _header(head, "content-length")
        if length is not None:
            size = int(length)
            while len(rest) < size:
                rest += self._recv()
            self.buffer = rest[size:]
            return status, rest[:size]
        if _header(head, "transfer-encoding") == "chunked":
            body, rest = self._chunked(rest)
            self.buffer = rest
            return status, body
        raise ConnectionError(f"an answer with neither content-length nor chunked encoding: {head[:200]!r}")

    def _chunked(self, data: bytes) -> tuple[bytes, bytes]:
        body = b""
        while True:
            line_end = data.find(b"\r\n")
            while line_end < 0:
                data += self._recv()
                line_end = data.find(b"\r\n")
            size = int(data[:line_end].split(b";")[0], 16)
            data = data[line_end + 2:]
            while len(data) < size + 2:
                data += self._recv()
            if size == 0:
                return body, data[2:]
            body += data[:size]
            data = data[size + 2:]

    def _recv(self) -> bytes:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        return chunk

    def close(self) -> None:
        self.sock.close()


def _header(head: str, name: str) -> str | None:
    for line in head.split("\r\n")[1:]:
        key, _, value = line.partition(":")
        if key.strip() == name:
            return value.strip()
    return None


def load(spec: dict[str, Any]) -> dict[str, Any]:
    """Spec: host, port, path, bodies (JSON texts, posted in turn), warmup_s, duration_s, core (or null)."""
    if spec.get("core") is not None:
        os.sched_setaffinity(0, {int(spec["core"])})
    host, port, path = spec["host"], int(spec["port"]), spec["path"]
    requests = []
    for text in spec["bodies"]:
        body = text.encode()
        requests.append(f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
                        f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    client = Client(host, port)
    try:
        answers = []
        for request in requests:  # each distinct request once, answers parsed (untimed): checked by serving.py
            status, body = client.post(request)
            if status != 200:
                raise RuntimeError(f"{path} answered {status}: {body[:500]!r}")
            answers.append(json.loads(body))
        sent, errors, n = len(requests), 0, len(requests)
        deadline = time.perf_counter() + float(spec["warmup_s"])
        i = 0
        while time.perf_counter() < deadline:
            status, _ = client.post(requests[i % n])
            sent, errors, i = sent + 1, errors + (status != 200), i + 1
        latencies: list[int] = []
        clock = time.perf_counter_ns
        gc.collect()
        gc.disable()  # nothing here makes cycles; keep the client's collector out of the timings
        started = clock()
        stop = started + int(float(spec["duration_s"]) * 1e9)
        now = started
        while now < stop:
            t0 = clock()
            status, _ = client.post(requests[i % n])
            now = clock()
            latencies.append(now - t0)
            errors += status != 200
            i += 1
        elapsed = clock() - started
        gc.enable()
        sent += len(latencies)
    finally:
        client.close()
    return {"answers": answers, "latencies_ns": latencies, "elapsed_ns": elapsed, "sent": sent, "errors": errors,
            "client_core": sorted(os.sched_getaffinity(0))}


# -- MLflow's model folders ---------------------------------------------------------------------------------

def mlflow_save(spec: dict[str, Any]) -> dict[str, Any]:
    """Spec: models {name: {pickle, out, example (records)}}, pip_requirements."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import pickle

    import mlflow
    import pandas as pd
    import sklearn
    import skops.io as sio

    trusted = {}
    for name, item in spec["models"].items():
        with open(item["pickle"], "rb") as src:
            model = pickle.load(src)  # written by serving.py a moment ago, with the same scikit-learn
        # MLflow's default format is skops; the forest's sklearn.tree._tree.Tree is not on skops' default list:
        # trusted here because this benchmark made the file itself
        trusted[name] = sio.get_untrusted_types(data=sio.dumps(model))
        mlflow.sklearn.save_model(model, item["out"], input_example=pd.DataFrame.from_records(item["example"]),
                                  pip_requirements=spec["pip_requirements"], skops_trusted_types=trusted[name] or None)
    import uvicorn

    loops = {name: _installed(name) for name in ("uvloop", "httptools")}
    return {"mlflow": mlflow.__version__, "sklearn": sklearn.__version__, "pandas": pd.__version__,
            "uvicorn": uvicorn.__version__, "serialization": "skops", "skops_trusted_types": trusted, **loops}


def _installed(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


if __name__ == "__main__":
    sys.exit(main(sys.argv))
