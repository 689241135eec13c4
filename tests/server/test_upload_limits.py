"""Uploads are bounded: a body over ``max_upload_mb`` is a 413 before or while it arrives, and a sparse tar
member (which would expand past its bytes on disk) is refused."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import keel
from keel.server.app import create_app


@pytest.fixture
def small_server(tmp_path: Path) -> tuple[keel.Workspace, TestClient, str]:
    ws = keel.init(tmp_path / "ws", max_upload_mb=1)
    ws.users.add("dev", "developer")
    client = TestClient(create_app(ws), base_url="http://127.0.0.1")
    yield ws, client, ws.tokens.create("dev").token
    client.close()
    ws.close()


def test_an_upload_over_the_limit_is_413_and_leaves_nothing(small_server: tuple) -> None:
    ws, client, token = small_server
    auth = {"Authorization": f"Bearer {token}"}
    run = client.post("/api/v1/runs", json={"experiment": "x"}, headers=auth).json()["id"]
    too_big = b"0" * (1024 * 1024 + 1)
    refused = client.put(f"/api/v1/runs/{run}/artifacts/big.bin", content=too_big, headers=auth)
    assert refused.status_code == 413 and refused.json()["error"]["type"] == "TooLarge"

    def chunks():  # no Content-Length: refused while it arrives
        for _ in range(3):
            yield b"0" * (512 * 1024)

    streamed = client.put(f"/api/v1/runs/{run}/artifacts/big.bin", content=chunks(), headers=auth)
    assert streamed.status_code == 413
    assert "big.bin" not in ws.runs.get(run).artifacts
    left = [p for p in (Path(ws.artifacts.root) / "runs").rglob("*") if p.is_file()]
    assert left == []  # no partial file, and no temporary file left behind
    assert client.put(f"/api/v1/runs/{run}/artifacts/ok.bin", content=b"0" * 1000, headers=auth).status_code == 201


def test_a_sparse_tar_member_is_refused(small_server: tuple) -> None:
    ws, client, token = small_server
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        info = tarfile.TarInfo("model.skops")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"abc"))
    data = bytearray(buffer.getvalue())
    data[156] = ord("S")  # the member's type flag: GNU sparse
    header = data[:512]
    header[148:156] = b" " * 8
    data[148:156] = f"{sum(header):06o}\0 ".encode()
    response = client.post("/api/v1/models/price/versions", content=bytes(data),
                           headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 400 and "plain files" in response.json()["error"]["message"], response.text
    assert ws.models.list() == []
