"""What only a remote workspace does: requests on the wire, HTTP errors, streaming, checks against the server.

Every test talks to a real uvicorn server on a free loopback port (SQLite behind it).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from remote_server import Team, start_team
from sklearn.linear_model import LinearRegression

import keel
from helpers_models import BombModel, ToyModel
from keel.errors import (
    Conflict,
    InvalidInput,
    KeelError,
    NotFound,
    PermissionDenied,
    TamperedPackage,
    Unauthenticated,
    UntrustedModel,
)
from keel.models.package import MANIFEST
from keel.remote import RemoteWorkspace, ServerUnreachable
from keel.remote.runs import RemoteBuffer

WORKERS = Path(__file__).parent / "workers"


@pytest.fixture
def team(tmp_path: Path) -> Iterator[Team]:
    with start_team(tmp_path / "server") as started:
        yield started


def _registered(ws: RemoteWorkspace, name: str = "price") -> keel.ModelVersion:
    x = pd.DataFrame({"a": np.arange(10.0), "b": np.arange(10.0) % 3})
    with ws.runs.start("price") as run:
        return run.log_model(LinearRegression().fit(x, 2 * x.a + x.b), name, input_example=x.head())


# -- batching ----------------------------------------------------------------------------------------------

def test_a_log_metric_loop_sends_nothing_until_one_batch_request(team: Team) -> None:
    with team.remote(flush_interval_s=60) as ws:
        run = ws.runs.start("loop")
        before = len(team.requests)
        start = time.perf_counter()
        for step in range(10_000):
            run.log_metric("loss", 1.0 / (step + 1), step=step)
        run.log_params({"lr": 0.1})
        run.set_tag("phase", "warm-up")
        elapsed = time.perf_counter() - start
        assert team.requests[before:] == []  # microseconds a call: nothing went over the wire
        assert elapsed < 1.0, f"10,000 buffered log_metric calls took {elapsed:.2f} s"
        assert ws.runs.flush() == 10_000
        assert team.requests[before:] == [f"POST /api/v1/runs/{run.id}/log"]
        stored = team.ws.runs.get(run.id)
        assert stored.metrics["loss"] == 1.0 / 10_000 and stored.params == {"lr": "0.1"}
        assert stored.tags == {"phase": "warm-up"}
        assert len(team.ws.runs.metric_history(run.id, "loss")) == 10_000
        run.end()


def test_batches_are_sent_at_the_size_threshold_the_interval_and_the_run_end(team: Team) -> None:
    with team.remote(max_points=1_000, flush_interval_s=60) as ws:
        with ws.runs.start("sizes") as run:
            before = len(team.requests)
            for step in range(3_500):
                run.log_metric("m", float(step), step=step)
            assert team.requests[before:] == [f"POST /api/v1/runs/{run.id}/log"] * 3
        assert team.requests[before + 3:] == [f"POST /api/v1/runs/{run.id}/log", f"POST /api/v1/runs/{run.id}/end"]
        assert len(team.ws.runs.metric_history(run.id, "m")) == 3_500
    with team.remote(flush_interval_s=0.05) as ws:
        run = ws.runs.start("ticks")
        run.log_metric("m", 1.0)
        deadline = time.monotonic() + 5
        while not team.ws.runs.metric_history(run.id, "m") and time.monotonic() < deadline:
            time.sleep(0.02)
        assert team.ws.runs.metric_history(run.id, "m") == [(None, 1.0)]  # sent by the background thread
        run.end()


def test_an_undelivered_batch_is_kept_in_order_and_a_refused_one_raised() -> None:
    sent: list[tuple[str, dict]] = []
    failures = [ServerUnreachable("down")]

    def send(run_id: str, body: dict) -> None:
        if failures:
            raise failures.pop()
        sent.append((run_id, body))

    buffer = RemoteBuffer(send, interval_s=60)
    buffer.add("r1", [("m", 1.0)], 0)
    with pytest.raises(ServerUnreachable):
        buffer.flush()
    buffer.add("r1", [("m", 2.0)], 1)
    buffer.add_params("r1", {"p": "x"})
    assert buffer.flush() == 2
    assert [(p["value"], p["step"]) for p in sent[0][1]["metrics"]] == [(1.0, 0), (2.0, 1)]
    failures.append(Conflict("run ended"))
    buffer.add("r1", [("m", 3.0)], 2)
    with pytest.raises(Conflict):
        buffer.flush()
    assert buffer.flush() == 0  # refused as wrong: dropped, not retried forever
    buffer.close()


# -- errors --------------------------------------------------------------------------------------------------

def test_http_errors_come_back_as_the_same_keel_errors(team: Team) -> None:
    with keel.open(team.url) as anonymous, pytest.raises(Unauthenticated):
        anonymous.runs.list()
    with keel.open(team.url, token="keel_0123456789ab_" + "x" * 43) as forged, pytest.raises(Unauthenticated):
        forged.runs.list()
    with team.remote("viewer") as viewer:
        assert viewer.runs.list() == []
        with pytest.raises(PermissionDenied, match="needs developer"):
            viewer.runs.start("price")
    with team.remote("developer") as dev:
        version = _registered(dev)
        with pytest.raises(PermissionDenied):
            dev.users.list()
        with team.remote("approver") as approver:
            approver.models.approve(version.name, reason="checked")
        with pytest.raises(PermissionDenied, match="approver role"):
            dev.models.promote(version.name, "production")
        with pytest.raises(NotFound):
            dev.models.load("nope/1")
        with pytest.raises(InvalidInput):
            dev.models.set_alias(version.name, "production")
    with team.remote("admin") as admin:
        assert {u.name for u in admin.users.list()} >= {"dev", "alice"}
        issued = admin.tokens.create("dev", expires_in="1h", description="ci")
        with keel.open(team.url, token=issued.token) as ci:
            assert ci.user == "dev"
        admin.tokens.revoke(issued.info.id, reason="rotated")
        with keel.open(team.url, token=issued.token) as ci, pytest.raises(Unauthenticated):
            ci.runs.list()


def test_an_unreachable_server_is_a_clear_keel_error() -> None:
    with keel.open("http://127.0.0.1:9", token="t") as ws, \
            pytest.raises(ServerUnreachable, match=r"cannot reach the keel server at http://127\.0\.0\.1:9") as raised:
        ws.runs.list()
    assert isinstance(raised.value, KeelError)


def test_keel_url_and_keel_token_open_the_server(team: Team, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEEL_URL", team.url)
    monkeypatch.setenv("KEEL_TOKEN", team.tokens["approver"])
    with keel.open() as ws:
        assert isinstance(ws, RemoteWorkspace) and ws.user == "alice"


# -- model packages ----------------------------------------------------------------------------------------

def test_a_tampered_package_is_refused_on_remote_load(team: Team) -> None:
    with team.remote() as ws:
        version = _registered(ws)
        ws.models.load(version.name)
        key = f"{version.package_key}/model.skops"
        data = bytearray(team.ws.artifacts.get_bytes(key))
        data[len(data) // 2] ^= 0xFF
        team.ws.artifacts.put_bytes(key, bytes(data))
        with pytest.raises(TamperedPackage, match=r"model\.skops changed"):
            ws.models.load(version.name)
        manifest_key = f"{version.package_key}/{MANIFEST}"
        team.ws.artifacts.put_bytes(manifest_key, team.ws.artifacts.get_bytes(manifest_key) + b"\n# edited\n")
        with pytest.raises(TamperedPackage, match="changed since the model was registered"):
            ws.models.load(version.name)


def _package_tar(folder: Path, members: dict[str, bytes]) -> Path:
    path = folder / "upload.tar"
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_the_server_refuses_packages_that_do_not_match_their_manifest_or_escape(team: Team, tmp_path: Path) -> None:
    with team.remote() as ws:
        version = _registered(ws)
        files = {name: team.ws.artifacts.get_bytes(f"{version.package_key}/{name}")
                 for name in [*ws.models.manifest(version.name)["files"], MANIFEST]}
        client = ws._client
        route = "/models/copy/versions"
        changed = {**files, "model.skops": files["model.skops"] + b"\0"}
        with pytest.raises(TamperedPackage, match=r"model\.skops changed"):
            client.upload("POST", route, _package_tar(tmp_path, changed), run=version.run_id)
        added = {**files, "extra.py": b"print('hi')"}
        with pytest.raises(TamperedPackage, match=r"extra\.py was added"):
            client.upload("POST", route, _package_tar(tmp_path, added), run=version.run_id)
        for name in ("../evil.txt", "/tmp/evil.txt", "sub/model.skops", ".hidden"):
            with pytest.raises(InvalidInput, match="plain files with plain names"):
                client.upload("POST", route, _package_tar(tmp_path, {**files, name: b"x"}), run=version.run_id)
        with pytest.raises(InvalidInput, match="not an uncompressed tar"):
            client.upload("POST", route, b"not a tar at all" * 100)
        with pytest.raises(InvalidInput, match="made by run"):
            client.upload("POST", route, _package_tar(tmp_path, files))  # no run: not the package's run
        assert not ws.models.exists("copy")
        assert client.upload("POST", route, _package_tar(tmp_path, files), run=version.run_id)["version"] == 1


def test_a_pickle_is_uploaded_without_running_and_loads_only_when_trusted(team: Team, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    x = pd.DataFrame({"a": [1.0, 2.0], "b": [0.5, 0.1]})
    with team.remote() as ws:
        with ws.runs.start("toy") as run:
            toy = run.log_model(ToyModel(), "toy", flavor="python", input_example=x)
        assert ws.models.load(toy.name, trusted=True).predict(x).tolist() == [1.5, 3.9]
        with pytest.raises(UntrustedModel):
            ws.models.load(toy.name)
        bomb = ws.models.register(BombModel(marker), "bomb", flavor="python", input_example=x)
        assert not marker.exists()  # packaging and the upload never unpickle
        with pytest.raises(UntrustedModel):
            ws.models.load(bomb.name)
        assert not marker.exists()


# -- artifacts -----------------------------------------------------------------------------------------------

def test_artifacts_download_with_their_hash_checked(team: Team, tmp_path: Path) -> None:
    with team.remote() as ws:
        with ws.runs.start("files") as run:
            run.log_artifact(b"a,b\n1,2\n", "tables/small.csv")
        assert ws.runs.download_artifact(run.id, "tables/small.csv", tmp_path).read_bytes() == b"a,b\n1,2\n"
        buffer = io.BytesIO()
        ws.runs.download_artifact(run.id, "tables/small.csv", buffer)
        assert buffer.getvalue() == b"a,b\n1,2\n"
        team.ws.artifacts.put_bytes(f"runs/{run.id}/artifacts/tables/small.csv", b"a,b\n6,6\n")
        with pytest.raises(KeelError, match="arrived with sha256"):
            ws.runs.download_artifact(run.id, "tables/small.csv", tmp_path / "again.csv")
        assert not (tmp_path / "again.csv").exists()
        with pytest.raises(NotFound):
            ws.runs.download_artifact(run.id, "missing.bin", tmp_path)


def test_a_download_carries_the_recorded_sha256_and_one_without_it_is_refused(team: Team, tmp_path: Path) -> None:
    with team.remote() as ws:
        with ws.runs.start("files") as run:
            run.log_artifact(b"x" * 3000, "blob.bin")
        route = f"runs/{run.id}/artifacts/blob.bin"
        with ws._client._http.stream("GET", route) as response:
            assert response.headers["repr-digest"] == \
                "sha-256=:" + base64.b64encode(hashlib.sha256(b"x" * 3000).digest()).decode() + ":"
        stripped = httpx.MockTransport(lambda request: httpx.Response(200, stream=httpx.ByteStream(b"x" * 3000)))
        ws._client._http._transport = stripped  # a server that sends no digest: nothing to check against
        with pytest.raises(KeelError, match="without its sha256"):
            ws.runs.download_artifact(run.id, "blob.bin", tmp_path)
        assert not (tmp_path / "blob.bin").exists()


@pytest.mark.slow
def test_a_300_mib_artifact_streams_both_ways_in_a_fraction_of_its_size(tmp_path: Path) -> None:
    size_mib = 300
    done = subprocess.run([sys.executable, str(WORKERS / "remote_transfer.py"), str(tmp_path), str(size_mib)],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["received_size"] == result["size"] == size_mib * 1024 * 1024
    assert result["received_sha256"] == result["sent_sha256"]
    growth_mib = (result["peak_kib"] - result["baseline_kib"]) / 1024
    assert growth_mib < 64, f"peak RSS grew {growth_mib:.0f} MiB moving a {size_mib} MiB artifact"
