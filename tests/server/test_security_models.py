"""Hostile model packages through every server path that touches packages: the marker never appears.

Each payload, if anything ever deserialised it, creates a marker file: pickles calling ``Path.touch`` or
``os.system``, a skops file whose loading would ``exec``, a skops estimator whose ``__setstate__`` touches,
pickles posing as LightGBM/XGBoost models. They reach the registry three ways: uploaded as a consistent
package (manifest and hashes agree) through the API's upload route, registered in process through the SDK,
and swapped into the store under a registered version (tampering). Then every model route of the app, API
and pages, found at test time, is called on them (show, info, files, diff, history, card, approvals,
aliases, approve, promote, lineage), so a route added later is covered too.
"""

from __future__ import annotations

import hashlib
import io
import re
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from helpers_models import (
    BombModel,
    MarkerEstimator,
    ToyModel,
    exec_skops,
    regression_frame,
    system_pickle,
    touch_pickle,
)
from keel.models.package import MANIFEST
from keel.server.security import csrf_token

from .conftest import Server
from .security_helpers import all_routes, fill, path_params, tar_folder, write_toy_package

X, Y = regression_frame(20)
UPLOAD = ("POST", "/api/v1/models/{name}/versions")


def _skops_marker_estimator(marker: Path) -> bytes:
    import skops.io as sio

    return sio.dumps(MarkerEstimator(marker=str(marker)).fit(X, Y))


# (flavor, payload): what the package claims to be, and what its model file really is
PAYLOADS: dict[str, tuple[str, Callable[[Path], bytes]]] = {
    "python-touch-pickle": ("python", touch_pickle),
    "python-os.system-pickle": ("python", system_pickle),
    "sklearn-exec-skops": ("sklearn", exec_skops),
    "sklearn-setstate-skops": ("sklearn", _skops_marker_estimator),
    "sklearn-pickle": ("sklearn", touch_pickle),
    "lightgbm-pickle": ("lightgbm", system_pickle),
    "xgboost-pickle": ("xgboost", touch_pickle),
}
MODEL_FILES = {"python": "model.pkl", "sklearn": "model.skops", "lightgbm": "model.lgb.txt", "xgboost": "model.ubj"}


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def hostile_package(folder: Path, flavor: str, model_bytes: bytes) -> bytes:
    """A package whose manifest and hashes are consistent, but whose model file is the payload: as a tar."""
    write_toy_package(folder)
    manifest = yaml.safe_load((folder / MANIFEST).read_bytes())
    (folder / manifest["model_file"]).unlink()
    (folder / MODEL_FILES[flavor]).write_bytes(model_bytes)
    files = {p.name: _sha256(p.read_bytes()) for p in sorted(folder.iterdir()) if p.name != MANIFEST}
    manifest.update(flavor=flavor, model_file=MODEL_FILES[flavor], files=files, metadata={})
    (folder / MANIFEST).write_text(yaml.safe_dump(manifest, sort_keys=False))
    return tar_folder(folder)


@pytest.fixture
def marker(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "MARKER"
    yield path
    assert not path.exists(), "a hostile payload ran"


@pytest.fixture
def client(server: Server) -> TestClient:
    """Answers 500s instead of raising them, so the sweep can report every route that fails."""
    return TestClient(server.client.app, base_url="http://127.0.0.1", raise_server_exceptions=False)


def _model_routes(server: Server) -> list[tuple[str, str]]:
    return [(method, route.path) for route in all_routes(server.client.app)
            if re.match(r"(/api/v1)?/models(/|$)", route.path) for method in sorted(route.methods - {"HEAD"})]


def _request(client: TestClient, server: Server, method: str, path: str, version: int, filename: str,
             legit: int) -> Any:
    """One call of a model route on ``price/<version>``, as the role and with the body it needs."""
    url = fill(path, {"name": "price", "version": str(version), "filename": filename, "alias": "champion"})
    page = not path.startswith("/api/")
    role = "approver" if path.endswith(("/approve", "/promote")) else "admin"
    token = server.tokens[role]
    headers = {"Authorization": f"Bearer {token}"}
    kwargs: dict[str, Any] = {}
    if page and method == "POST":  # the pages' forms: the session cookie and its CSRF token
        headers = {"Cookie": f"keel_token={token}", "X-CSRF-Token": csrf_token(token)}
        kwargs["data"] = {"reason": "security test", "environment": "staging"}
    elif method in ("POST", "PUT"):
        kwargs["json"] = {"reason": "security test", "environment": "staging", "alias": "champion",
                          "version": version, "description": "card"}
    if (method, path) == UPLOAD:
        return None  # uploads are what put the payloads here; covered by their own tests
    query = {"a": str(legit), "b": str(version), "version": str(version)} if method == "GET" else {}
    return client.request(method, url, headers=headers, params=query, follow_redirects=False, **kwargs)


def _sweep(client: TestClient, server: Server, version: int, marker: Path, legit: int = 1) -> int:
    """Every model route on ``price/<version>``, and each of its files; the marker checked after each call."""
    files = list(server.ws.models.version(f"price/{version}").package_key and
                 server.ws.models.package_bytes(server.ws.models.version(f"price/{version}")))
    called = 0
    for method, path in _model_routes(server):
        for filename in files if "filename" in path_params(path) else [MANIFEST]:
            response = _request(client, server, method, path, version, filename, legit)
            if response is None:
                continue
            assert response.status_code < 500, (method, path, response.text[:300])
            assert not marker.exists(), f"{method} {path} ran the payload"
            called += 1
    lineage = client.get(f"/api/v1/lineage/model:price/{version}", headers=server.as_role("viewer"))
    assert lineage.status_code == 200 and not marker.exists()
    return called


def _upload(client: TestClient, server: Server, data: bytes, role: str = "developer") -> Any:
    return client.post("/api/v1/models/price/versions", content=data, headers=server.as_role(role))


def _legit(server: Server) -> int:
    from sklearn.dummy import DummyRegressor

    return server.ws.models.register(DummyRegressor().fit(X, Y), "price", input_example=X).version


def test_the_sweep_reaches_every_model_route(server: Server, client: TestClient, marker: Path) -> None:
    """The sweep itself: on a legitimate version, every route answers below 500 and most succeed."""
    version = _legit(server)
    assert _sweep(client, server, version, marker) > 15
    assert server.ws.models.version("price@staging").version == version  # promote went through


@pytest.mark.parametrize("payload", PAYLOADS)
def test_an_uploaded_hostile_package_never_runs(server: Server, client: TestClient, marker: Path, tmp_path: Path,
                                                payload: str) -> None:
    if UPLOAD not in _model_routes(server):
        pytest.skip("no package upload route")
    legit = _legit(server)
    flavor, make = PAYLOADS[payload]
    uploaded = _upload(client, server, hostile_package(tmp_path / "pkg", flavor, make(marker)))
    assert not marker.exists()
    assert uploaded.status_code < 500, uploaded.text
    if uploaded.status_code == 201:  # stored as is (nothing deserialised): now every path that reads it
        version = uploaded.json()["version"]
        assert _sweep(client, server, version, marker, legit) > 15
        diff = client.get("/api/v1/models/price/diff", params={"a": str(version), "b": str(legit)},
                          headers=server.as_role("viewer"))
        assert diff.status_code < 500 and not marker.exists()


def test_a_hostile_model_registered_in_process_never_runs_through_the_server(
        server: Server, client: TestClient, marker: Path) -> None:
    legit = _legit(server)
    version = server.ws.models.register(BombModel(marker), "price", input_example=X, flavor="python").version
    assert not marker.exists()
    assert _sweep(client, server, version, marker, legit) > 15


@pytest.mark.parametrize("payload", ["python-touch-pickle", "sklearn-exec-skops", "sklearn-setstate-skops"])
def test_a_payload_swapped_into_a_registered_package_never_runs(server: Server, client: TestClient, marker: Path,
                                                                payload: str) -> None:
    """An attacker who can write the artifact store replaces a registered version's model file."""
    legit = _legit(server)
    version = server.ws.models.register(ToyModel(), "price", input_example=X, flavor="python").version
    found = server.ws.models.version(f"price/{version}")
    make = PAYLOADS[payload][1]
    server.ws.artifacts.put_bytes(f"{found.package_key}/{MODEL_FILES['python']}", make(marker))
    assert _sweep(client, server, version, marker, legit) > 15


# -- the upload route refuses what is not a flat package ----------------------------------------------------------

def _tar(members: list[tuple[tarfile.TarInfo, bytes | None]], mode: str = "w") -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode=mode) as tar:  # type: ignore[call-overload]
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


def _hostile_tars(canary: Path) -> dict[str, bytes]:
    payload = b"PWNED"
    regular = [(_member(n), payload) for n in ("../canary.txt", "/" + str(canary).lstrip("/"), "a/b.txt",
                                               "..", ".hidden", "x\\..\\canary.txt", "x\x00y", "-rf")]
    tars = {f"name {info.name!r}": _tar([(info, data)]) for info, data in regular}
    tars |= {
        "symlink out": _tar([(_member("model.pkl", tarfile.SYMTYPE, str(canary)), None)]),
        "hardlink out": _tar([(_member("model.pkl", tarfile.LNKTYPE, str(canary)), None)]),
        "folder": _tar([(_member("sub", tarfile.DIRTYPE), None)]),
        "device": _tar([(_member("dev", tarfile.CHRTYPE), None)]),
        "fifo": _tar([(_member("fifo", tarfile.FIFOTYPE), None)]),
        "duplicate": _tar([(_member("model.pkl"), payload), (_member("model.pkl"), payload)]),
        "too many files": _tar([(_member(f"f{i}.txt"), b"") for i in range(200)]),
        "gzip": _tar([(_member("model.pkl"), payload)], mode="w:gz"),
        "not a tar": b"PK\x03\x04 certainly not a tar",
        "empty": b"",
        "truncated": _tar([(_member("model.pkl"), payload * 1000)])[:700],
    }
    return tars


def test_an_upload_that_is_not_a_flat_package_is_refused(server: Server, client: TestClient, tmp_path: Path) -> None:
    if UPLOAD not in _model_routes(server):
        pytest.skip("no package upload route")
    (tmp_path / "outside").mkdir()
    canary = tmp_path / "outside" / "canary.txt"
    canary.write_bytes(b"CANARY-models")
    before = canary.stat().st_mtime_ns
    for label, data in _hostile_tars(canary).items():
        response = _upload(client, server, data)
        assert 400 <= response.status_code < 500, (label, response.status_code, response.text[:300])
        assert b"CANARY" not in response.content
    assert canary.read_bytes() == b"CANARY-models" and canary.stat().st_mtime_ns == before
    assert sorted(p.name for p in canary.parent.iterdir()) == ["canary.txt"]
    assert server.ws.models.list() == []


def test_a_viewer_cannot_upload_a_package(server: Server, client: TestClient, tmp_path: Path, marker: Path) -> None:
    if UPLOAD not in _model_routes(server):
        pytest.skip("no package upload route")
    refused = _upload(client, server, hostile_package(tmp_path / "pkg", "python", touch_pickle(marker)), "viewer")
    assert refused.status_code == 403 and server.ws.models.list() == []


def _manifest_variant(tmp_path: Path, edit: Callable[[str], str]) -> bytes:
    folder = tmp_path / "pkg"
    write_toy_package(folder)
    (folder / MANIFEST).write_text(edit((folder / MANIFEST).read_text()))
    return tar_folder(folder)


ALIAS_BOMB = "".join([" l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n"] + [
    f" l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]\n" for i in range(1, 5)])


@pytest.mark.parametrize("edit", [
    lambda text: re.sub(r"files:\n((?:  .*\n)+)", lambda m: "files:\n" + "".join(
        "- " + line.strip().split(":")[0] + "\n" for line in m.group(1).splitlines(keepends=True)), text),
    lambda text: re.sub(r"model_class: .*", "model_class: {a: 1}", text),
    lambda text: text.replace("metadata: {}", "metadata:\n" + ALIAS_BOMB),
], ids=["files-as-a-list", "model-class-as-a-mapping", "alias-bomb"])
def test_a_manifest_of_the_wrong_shape_is_refused(server: Server, client: TestClient, tmp_path: Path,
                                                  edit: Callable[[str], str]) -> None:
    if UPLOAD not in _model_routes(server):
        pytest.skip("no package upload route")
    response = _upload(client, server, _manifest_variant(tmp_path, edit))
    assert 400 <= response.status_code < 500, response.text
