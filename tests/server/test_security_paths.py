"""Path traversal on every artifact route: no request reads, writes or deletes a file outside the artifact root.

The artifact routes are found in the app at test time (any route, API or page, whose path names artifacts or
files), so a new download, upload, list or delete route is attacked here the day it is added. Each hostile
name goes in as raw bytes (a test client would normalise ``..`` away): through the ASGI app for every
variant, and over a socket to a real uvicorn for the core ones. Canary files sit outside the artifact root
at every level a climb could reach; each answer must be a 4xx that does not contain them, and afterwards
they are unchanged and no file has appeared outside the root.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from sklearn.dummy import DummyRegressor
from starlette.routing import Mount

import keel

from .conftest import Server
from .security_helpers import (
    Canaries,
    RawResponse,
    all_routes,
    asgi_call,
    fill,
    http_request,
    keel_server_process,
    live_server,
    path_params,
    raw_http,
    tar_folder,
    write_toy_package,
)

ARTIFACT_ROUTE = re.compile(r"/(artifacts|files)(/|$)|:path\}")


@dataclass
class Target:
    server: Server
    canaries: Canaries
    run_id: str
    run_base: Path  # where the run's artifacts live
    package_base: Path  # where model price/1's files live
    outside: Path  # a folder outside the workspace that symlinks point into

    @property
    def app(self) -> Any:
        return self.server.client.app

    def auth(self, role: str = "admin") -> list[tuple[bytes, bytes]]:
        return [(b"authorization", f"Bearer {self.server.tokens[role]}".encode())]

    def base_for(self, path: str) -> Path:
        return self.package_base if path.startswith(("/api/v1/models", "/models")) else self.run_base

    def values(self, path: str) -> dict[str, str]:
        """Real objects for every path parameter but the hostile one."""
        return {"run_id": self.run_id, "name": "price", "version": "1", "model": "price"}


@pytest.fixture
def target(server: Server, tmp_path: Path) -> Iterator[Target]:
    ws = server.ws
    run = ws.runs.start("price")  # left running: uploads to it are accepted, so they reach the store
    run.log_artifact(b"an ordinary artifact", "notes.txt")
    run.log_artifact(b"soon a symlink", "link.txt")
    run.log_artifact(b"soon in a symlinked folder", "linkdir/canary.txt")
    x = pd.DataFrame({"a": [1.0, 2.0, 3.0]})
    version = ws.models.register(DummyRegressor().fit(x, [1.0, 2.0, 3.0]), "price", input_example=x)
    artifact_root = Path(ws.artifacts.root)
    run_base = artifact_root / "runs" / run.id / "artifacts"
    outside = tmp_path / "outside"
    outside.mkdir()
    canaries = Canaries.plant([tmp_path, ws.root, ws.root / ".keel", outside], watch=tmp_path,
                              artifact_root=artifact_root)
    # what an attacker with write access to the store would plant: links from inside the root to outside it
    (run_base / "link.txt").unlink()
    (run_base / "link.txt").symlink_to(tmp_path / "canary.txt")
    (run_base / "linkdir" / "canary.txt").unlink()
    (run_base / "linkdir").rmdir()
    (run_base / "linkdir").symlink_to(outside, target_is_directory=True)
    yield Target(server, canaries, run.id, run_base, artifact_root / version.package_key, outside)
    canaries.assert_untouched()
    assert ws.runs.get(run.id).status == "running"  # so every upload above was refused for its name
    run.end()


def artifact_routes(app: Any) -> list[tuple[str, str]]:
    """(method, path) of every route that names an artifact or a file: download, upload, list, delete."""
    found = []
    for route in all_routes(app):
        if ARTIFACT_ROUTE.search(route.path):
            found += [(method, route.path) for method in sorted(route.methods - {"HEAD"})]
    return found


def hostile_names(base: Path, canary: Path) -> dict[str, str]:
    """The ways to spell "the canary, from ``base``" that a careless server would follow, as raw URL text."""
    rel = os.path.relpath(canary, base)  # ../../../canary.txt
    absolute = str(canary)
    up = rel.count("..")
    return {
        "dotdot": rel,
        "dotdot-deeper": "../" * (up + 3) + rel.replace("../", ""),
        "backslash": rel.replace("/", "%5c"),
        "backslash-raw": rel.replace("/", "\\"),
        "mixed-slashes": rel.replace("../", "..%5c", 1),
        "dots-encoded": rel.replace(".", "%2e"),
        "slashes-encoded": rel.replace("/", "%2f"),
        "all-encoded": rel.replace(".", "%2e").replace("/", "%2f"),
        "all-encoded-upper": rel.replace(".", "%2E").replace("/", "%2F"),
        "double-encoded": rel.replace(".", "%252e").replace("/", "%252f"),
        "double-encoded-slash": rel.replace("/", "%252f"),
        "double-encoded-backslash": rel.replace("/", "%255c"),
        "overlong-slash": rel.replace("/", "%c0%af"),
        "overlong-dot": rel.replace(".", "%c0%ae"),
        "overlong-backslash": rel.replace("/", "%c1%9c"),
        "fullwidth": rel.replace(".", "%ef%bc%8e").replace("/", "%ef%bc%8f"),
        "two-dot-leader": rel.replace("..", "%e2%80%a5"),
        "iis-unicode": rel.replace(".", "%u002e").replace("/", "%u2215"),
        "dotdot-semicolon": rel.replace("../", "..;/"),
        "four-dots": rel.replace("../", "....//"),
        "dot-padding": rel.replace("../", "./../"),
        "trailing-space": rel.replace("../", "..%20/"),
        "nul-suffix": rel + "%00.png",
        "nul-inside": rel.replace("canary", "can%00ary"),
        "absolute": absolute,
        "absolute-encoded": absolute.replace("/", "%2f"),
        "absolute-double-slash": "/" + absolute,
        "absolute-backslash": absolute.replace("/", "%5c"),
        "file-url": "file://" + absolute,
        "file-url-encoded": "file:%2f%2f" + absolute.replace("/", "%2f"),
        "file-url-localhost": "file://localhost" + absolute,
        "home": "~/" + canary.name,
        "home-encoded": "%7e/" + canary.name,
        "drive": "C:%5c" + canary.name,
        "unc": "%5c%5clocalhost%5c" + canary.name,
    }


def assert_refused(target: Target, response: RawResponse, what: str) -> None:
    assert response.error is None, f"{what}: the app raised {response.error!r}"
    assert 400 <= response.status < 500, f"{what}: {response.status} {response.text[:300]}"
    target.canaries.assert_not_in(response.body, what)


def test_the_artifact_routes_are_found(server: Server) -> None:
    routes = artifact_routes(server.client.app)
    assert ("GET", "/api/v1/runs/{run_id}/artifacts/{name:path}") in routes
    assert ("PUT", "/api/v1/runs/{run_id}/artifacts/{name:path}") in routes
    assert ("GET", "/api/v1/models/{name}/versions/{version}/files/{filename}") in routes


def _requests(target: Target) -> Iterator[tuple[str, str, bytes, bytes]]:
    """(method, label, raw path, query) for every artifact route and every hostile name."""
    for method, path in artifact_routes(target.app):
        params = path_params(path)
        base = target.base_for(path)
        names = {f"{label}@{canary.parent.name}": name for canary in target.canaries.files
                 for label, name in hostile_names(base, canary).items()}
        if path.endswith("}"):  # the last parameter names the artifact
            values = target.values(path)
            for label, name in names.items():
                raw = fill(path, {**values, params[-1]: "\x00"}).replace("\x00", name)
                yield method, f"{method} {path} [{label}]", raw.encode(), b""
        else:  # a listing or an action on a folder: its query parameters name things
            route = next(r for r in all_routes(target.app) if r.path == path and method in r.methods)
            raw = fill(path, target.values(path)).encode()
            for query in (p.name for p in route.dependant.query_params):
                for label, name in names.items():
                    yield method, f"{method} {path}?{query} [{label}]", raw, f"{query}={name}".encode()


def test_hostile_names_on_every_artifact_route_are_refused(target: Target) -> None:
    checked = 0
    for method, label, raw, query in _requests(target):
        body = b"PWNED by " + label.encode() if method in ("PUT", "POST") else b""
        for role in ("admin",):
            response = asgi_call(target.app, method, raw, query=query, headers=target.auth(role), body=body)
            assert_refused(target, response, label)
        checked += 1
    assert checked > 300


def test_a_symlink_inside_the_artifact_folder_is_not_followed_out(target: Target) -> None:
    """The DB knows ``link.txt`` and ``linkdir/canary.txt``; on disk they now lead outside the root."""
    for method, path in artifact_routes(target.app):
        if "/runs/" not in path or not path.endswith("}"):
            continue
        for name in ("link.txt", "linkdir/canary.txt", "linkdir/new.txt", "linkdir"):
            raw = fill(path, {**target.values(path), path_params(path)[-1]: name}).encode()
            body = b"PWNED through a symlink" if method in ("PUT", "POST") else b""
            assert_refused(target, asgi_call(target.app, method, raw, headers=target.auth(), body=body),
                           f"{method} {path} [{name}]")
    assert sorted(p.name for p in target.outside.iterdir()) == ["canary.txt"]


def test_the_ordinary_artifact_is_still_served(target: Target) -> None:
    """The refusals above are not a broken route: the same route serves a legitimate name."""
    raw = f"/api/v1/runs/{target.run_id}/artifacts/notes.txt".encode()
    response = asgi_call(target.app, "GET", raw, headers=target.auth("viewer"))
    assert response.status == 200 and response.body == b"an ordinary artifact"
    raw = b"/api/v1/models/price/versions/1/files/keel-model.yaml"
    assert asgi_call(target.app, "GET", raw, headers=target.auth("viewer")).status == 200


def test_static_files_do_not_climb_out(target: Target) -> None:
    mounts = [r for r in getattr(target.app, "fastapi", target.app).routes if isinstance(r, Mount)]
    if not mounts:
        pytest.skip("no static files are served")
    static = Path(next(m.app.directory for m in mounts if hasattr(m.app, "directory")))
    for canary in target.canaries.files:
        for label, name in hostile_names(static, canary).items():
            response = asgi_call(target.app, "GET", b"/static/" + name.encode())
            assert_refused(target, response, f"/static [{label}]")


CORE = ("dotdot", "backslash", "all-encoded", "double-encoded", "overlong-slash", "nul-suffix", "absolute-encoded",
        "file-url")


def test_core_cases_against_a_real_uvicorn(target: Target) -> None:
    """What a socket delivers is what the server sees: no client library in between to clean the path."""
    token = target.server.tokens["admin"]
    with live_server(target.app) as port:
        host = f"127.0.0.1:{port}".encode()
        health = raw_http(port, http_request("GET", b"/api/v1/health", host=host))
        assert health.status == 200
        sent = 0
        for method, path in artifact_routes(target.app):
            if not path.endswith("}"):
                continue
            params = path_params(path)
            for canary in target.canaries.files:
                for label, name in hostile_names(target.base_for(path), canary).items():
                    if label not in CORE:
                        continue
                    raw = fill(path, {**target.values(path), params[-1]: "\x00"}).replace("\x00", name).encode()
                    body = b"PWNED over a socket" if method in ("PUT", "POST") else b""
                    response = raw_http(port, http_request(method, raw, host=host, body=body,
                                                           headers={"Authorization": f"Bearer {token}"}))
                    assert_refused(target, response, f"uvicorn {method} {path} [{label}]")
                    sent += 1
            raw = fill(path, {**target.values(path), params[-1]: "link.txt"}).encode()
            if "/runs/" in path:
                response = raw_http(port, http_request(method, raw, host=host, body=b"PWNED" if method == "PUT"
                                                       else b"", headers={"Authorization": f"Bearer {token}"}))
                assert_refused(target, response, f"uvicorn {method} {path} [symlink]")
        assert sent > 50


SOURCES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("POST", "/api/v1/runs", {"experiment": "price", "inputs": ["{url}"]}),
    ("POST", "/api/v1/runs", {"experiment": "price", "parent": "{url}"}),
    ("POST", "/api/v1/splits", {"table": "{url}", "target": "y"}),
    ("GET", "/api/v1/lineage/{url}", None),
    ("GET", "/api/v1/tables/{url}/rows", None),
    ("GET", "/api/v1/tables/{url}/version", None),
    ("GET", "/api/v1/splits/{url}", None),
    ("POST", "/api/v1/tables/listings/ingest?filename={url}", None),
]
URLS = ["file://{canary}", "file:///{canary}", "file://localhost{canary}", "{canary}", "../../canary.txt",
        "s3://bucket/canary.txt", "http://169.254.169.254/latest/meta-data/", "gs://bucket/x", "memory://x",
        "ftp://example.com/x", "\\\\host\\share\\canary.txt", "data:text/plain,hello"]


def test_urls_and_schemes_where_something_names_a_source_are_refused(target: Target) -> None:
    """Refs name tables, runs and models; no route takes a file path or URL from a client."""
    import json
    from urllib.parse import quote

    canary = next(iter(target.canaries.files))
    for method, path, body in SOURCES:
        for template in URLS:
            url = template.format(canary=canary)
            raw_path, _, query = path.replace("{url}", quote(url, safe="")).partition("?")
            if "{url}" in path.partition("?")[2]:
                raw_path, _, query = path.partition("?")
                query = query.replace("{url}", quote(url, safe=""))
            data = json.dumps(body).replace("{url}", url.replace("\\", "\\\\")).encode() if body else b"a,b\n1,2\n"
            headers = [*target.auth(), (b"content-type", b"application/json")]
            response = asgi_call(target.app, method, raw_path.encode(), query=query.encode(), headers=headers,
                                 body=data if method == "POST" else b"")
            assert_refused(target, response, f"{method} {path} [{url}]")


@pytest.mark.parametrize("filename", ["../listings.csv", "/etc/listings.csv", "a/b.csv", "..%2flistings.csv",
                                      "%2e%2e%2flistings.csv", "listings.csv%00.png", "x%00.csv", "..",
                                      "x" * 300 + ".csv", "list%0aings.csv", "%0d%0alistings.csv"])
def test_an_upload_file_name_that_is_not_a_plain_file_name_is_refused(target: Target, filename: str) -> None:
    """The ingest route takes the upload's file name (for its format and the record): only a plain name.

    A NUL or an over-long name used to reach ``os.open`` and come back as a 500; a newline was taken.
    """
    response = asgi_call(target.app, "POST", b"/api/v1/tables/listings/ingest", query=f"filename={filename}".encode(),
                         headers=target.auth(), body=b"a,b\n1,2\n")
    assert_refused(target, response, filename)


def _modes(root: Path) -> dict[str, str]:
    """Path (relative to ``root``) -> octal mode, for ``root`` and everything under it."""
    found = {".": oct(root.stat().st_mode & 0o777)}
    for path in root.rglob("*"):
        found[str(path.relative_to(root))] = oct(path.lstat().st_mode & 0o777)
    return found


def _store_through_the_server(server: Server, tmp_path: Path) -> None:
    """An artifact in nested folders, a table, and (where the route exists) a model package, all over HTTP."""
    headers = server.as_role("developer")
    run_id = server.client.post("/api/v1/runs", json={"experiment": "modes"}, headers=headers).json()["id"]
    stored = server.client.put(f"/api/v1/runs/{run_id}/artifacts/plots/deep/er/loss.txt", content=b"0.1",
                               headers=headers)
    assert stored.status_code == 201, stored.text
    ingested = server.client.post("/api/v1/tables/listings/ingest", params={"filename": "l.csv"},
                                  content=b"id,price\n1,10.0\n2,12.5\n", headers=headers)
    assert ingested.status_code == 201, ingested.text
    if ("POST", "/api/v1/models/{name}/versions") in [(m, r.path) for r in all_routes(server.client.app)
                                                       for m in r.methods]:
        folder = tmp_path / "package"
        write_toy_package(folder)
        data = tar_folder(folder)
        uploaded = server.client.post("/api/v1/models/toy/versions", content=data, headers=headers)
        assert uploaded.status_code == 201, uploaded.text


@pytest.fixture
def no_umask() -> Iterator[None]:
    """A permissive umask, so a mode that is right only because of the usual 022 is caught."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def test_artifacts_stored_through_the_server_are_private(server: Server, tmp_path: Path, no_umask: None) -> None:
    _store_through_the_server(server, tmp_path)
    root = Path(server.ws.artifacts.root)
    modes = _modes(root)
    assert any(name.endswith("loss.txt") for name in modes)
    wrong = {name: mode for name, mode in modes.items()
             if mode != ("0o700" if (root / name).is_dir() else "0o600")}
    assert wrong == {}, "artifact files must be 0600 and folders 0700"
    assert oct((server.ws.root / ".keel").stat().st_mode & 0o777) == "0o700"


def test_everything_keel_server_writes_under_keel_is_private(tmp_path: Path) -> None:
    """A real ``keel server`` started under umask 0: the run's artifact, the Delta table (written by deltalake,
    which takes the process umask) and the model package all end up 0600 in 0700 folders."""
    ws = keel.init(tmp_path / "ws", user="admin-user")
    ws.users.add("developer-user", "developer")
    token = ws.tokens.create("developer-user").token
    ws.close()
    with keel_server_process(tmp_path / "ws", umask=0) as url, \
            httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as client:
        run_id = client.post("/api/v1/runs", json={"experiment": "modes"}).json()["id"]
        assert client.put(f"/api/v1/runs/{run_id}/artifacts/plots/deep/er/loss.txt", content=b"0.1").status_code == 201
        ingested = client.post("/api/v1/tables/listings/ingest", params={"filename": "l.csv"},
                               content=b"id,price\n1,10.0\n2,12.5\n")
        assert ingested.status_code == 201, ingested.text
        write_toy_package(tmp_path / "package")
        uploaded = client.post("/api/v1/models/toy/versions", content=tar_folder(tmp_path / "package"))
        assert uploaded.status_code == 201, uploaded.text
    keel_dir = tmp_path / "ws" / ".keel"
    modes = _modes(keel_dir)
    assert any("_delta_log" in name for name in modes) and any(name.endswith("loss.txt") for name in modes)
    wrong = {name: mode for name, mode in modes.items()
             if mode != ("0o700" if (keel_dir / name).is_dir() else "0o600")}
    assert wrong == {}
