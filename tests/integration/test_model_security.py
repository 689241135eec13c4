"""Model packages are safe: tampering is refused, hostile pickles and skops files never run, bad input is clear.

The attacker here can write the artifact store (swap, add, delete or rewrite any package file) but not the
metadata database, which pins each version's ``keel-model.yaml`` by sha256. Every hostile payload would
create a marker file if it ever ran; each test asserts the marker is absent afterwards.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import lightgbm
import numpy as np
import pytest
import xgboost
import yaml
from sklearn.dummy import DummyRegressor
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

import keel
from helpers_models import (
    BombModel,
    MarkerEstimator,
    NoPredict,
    ToyModel,
    crafted_skops,
    double,
    exec_skops,
    regression_frame,
    system_pickle,
    touch_pickle,
)
from keel.errors import (
    InvalidInput,
    InvalidRef,
    KeelError,
    NotFound,
    TamperedPackage,
    UnsupportedModel,
    UntrustedModel,
)
from keel.models.flavors import flavor_named
from keel.models.package import EXAMPLE_FILE, MANIFEST, REQUIREMENTS
from keel.models.signature import infer_signature

X, Y = regression_frame(30)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _fit(flavor: str) -> Any:
    if flavor == "sklearn":
        return LinearRegression().fit(X, Y)
    if flavor == "lightgbm":
        return lightgbm.LGBMRegressor(n_estimators=3, num_leaves=4, min_child_samples=3, verbose=-1).fit(X, Y)
    if flavor == "xgboost":
        return xgboost.XGBRegressor(n_estimators=3, max_depth=2).fit(X, Y)
    return ToyModel()


FLAVOR_NAMES = ["sklearn", "lightgbm", "xgboost", "python"]


@pytest.fixture
def marker(tmp_path: Path) -> Iterator[Path]:
    """The file a hostile payload would create; it must not exist at the end of the test."""
    path = tmp_path / "MARKER"
    yield path
    assert not path.exists(), "a hostile payload ran"


def register(ws: keel.Workspace, flavor: str, name: str = "price") -> Any:
    model = _fit(flavor)
    with ws.runs.start("price") as run:
        return run.log_model(model, name, input_example=X, flavor="python" if flavor == "python" else None)


def package(ws: keel.Workspace, ref: str) -> tuple[str, dict[str, bytes]]:
    version = ws.models.version(ref)
    return version.package_key, ws.models.package_bytes(version)


def put(ws: keel.Workspace, ref: str, name: str, data: bytes) -> None:
    key, _ = package(ws, ref)
    ws.artifacts.put_bytes(f"{key}/{name}", data)


def flip_one_byte(data: bytes, at: int | None = None) -> bytes:
    index = len(data) // 2 if at is None else at
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1:]


def assert_load_refused(ws: keel.Workspace, ref: str, error: type[KeelError], *fragments: str,
                        trusted: bool = False) -> str:
    with pytest.raises(error) as info:
        ws.models.load(ref, trusted=trusted)
    for fragment in fragments:
        assert fragment in info.value.message, (fragment, info.value.message)
    return info.value.message


# -- tampering ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("flavor", FLAVOR_NAMES)
def test_one_changed_byte_in_the_model_file_is_refused(ws: keel.Workspace, flavor: str) -> None:
    register(ws, flavor)
    model_file = flavor_named(flavor).model_file
    _, files = package(ws, "price/1")
    put(ws, "price/1", model_file, flip_one_byte(files[model_file]))
    for trusted in (False, True):
        message = assert_load_refused(ws, "price/1", TamperedPackage, f"{model_file} changed", trusted=trusted)
        assert "register the model again" in message


@pytest.mark.parametrize("name", [REQUIREMENTS, EXAMPLE_FILE])
def test_one_changed_byte_in_any_other_file_is_refused(ws: keel.Workspace, name: str) -> None:
    register(ws, "sklearn")
    _, files = package(ws, "price/1")
    put(ws, "price/1", name, flip_one_byte(files[name], at=len(files[name]) - 1))
    assert_load_refused(ws, "price/1", TamperedPackage, f"{name} changed")


def test_an_untouched_package_loads_and_keeps_loading(ws: keel.Workspace) -> None:
    register(ws, "sklearn")
    for _ in range(2):
        np.testing.assert_allclose(ws.models.load("price/1").predict(X), _fit("sklearn").predict(X))


@pytest.mark.parametrize("name", ["model.skops", REQUIREMENTS, EXAMPLE_FILE])
def test_a_removed_file_is_refused(ws: keel.Workspace, name: str) -> None:
    register(ws, "sklearn")
    key, _ = package(ws, "price/1")
    ws.artifacts.delete(f"{key}/{name}")
    assert_load_refused(ws, "price/1", TamperedPackage, f"{name} is missing")


def test_a_removed_manifest_is_refused(ws: keel.Workspace) -> None:
    register(ws, "sklearn")
    key, _ = package(ws, "price/1")
    ws.artifacts.delete(f"{key}/{MANIFEST}")
    assert_load_refused(ws, "price/1", TamperedPackage, MANIFEST)


@pytest.mark.parametrize("name", ["extra.py", "model.pkl", "__init__.py"])
def test_an_added_file_is_refused(ws: keel.Workspace, name: str) -> None:
    register(ws, "sklearn")
    put(ws, "price/1", name, b"print('hello')\n")
    assert_load_refused(ws, "price/1", TamperedPackage, f"{name} was added")


def _rewrite_manifest(ws: keel.Workspace, ref: str, change: Callable[[dict[str, Any]], None]) -> None:
    _, files = package(ws, ref)
    manifest = yaml.safe_load(files[MANIFEST])
    change(manifest)
    put(ws, ref, MANIFEST, yaml.safe_dump(manifest, sort_keys=False).encode())


def test_a_rewritten_manifest_is_refused_because_the_registry_pins_its_hash(ws: keel.Workspace) -> None:
    register(ws, "sklearn")
    _rewrite_manifest(ws, "price/1", lambda m: m.update(flavor="python"))
    assert_load_refused(ws, "price/1", TamperedPackage, f"{MANIFEST} changed since the model was registered")
    with pytest.raises(TamperedPackage):
        ws.models.manifest("price/1")


def test_a_swapped_model_with_a_matching_manifest_hash_is_refused(ws: keel.Workspace) -> None:
    """The attacker swaps the model and fixes the file's hash in the manifest: the manifest's own hash breaks."""
    register(ws, "sklearn")
    other = LinearRegression().fit(X, -Y)
    folder = ws.root / "other"
    folder.mkdir()
    flavor_named("sklearn").save(other, folder)
    swapped = (folder / "model.skops").read_bytes()
    put(ws, "price/1", "model.skops", swapped)
    _rewrite_manifest(ws, "price/1", lambda m: m["files"].update({"model.skops": _sha256(swapped)}))
    assert_load_refused(ws, "price/1", TamperedPackage, f"{MANIFEST} changed")


# -- code execution --------------------------------------------------------------------------------------

PAYLOADS = {"touch": touch_pickle, "os.system": system_pickle}


@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.parametrize("flavor", FLAVOR_NAMES)
def test_a_pickle_swapped_into_any_package_never_runs(ws: keel.Workspace, marker: Path, flavor: str,
                                                      payload: str) -> None:
    register(ws, flavor)
    put(ws, "price/1", flavor_named(flavor).model_file, PAYLOADS[payload](marker))
    for trusted in (False, True):
        assert_load_refused(ws, "price/1", TamperedPackage, "changed", trusted=trusted)
        assert not marker.exists()


@pytest.mark.parametrize("flavor", FLAVOR_NAMES)
def test_a_whole_forged_python_package_never_runs_even_when_trusted(ws: keel.Workspace, marker: Path,
                                                                    flavor: str) -> None:
    """Manifest, hashes and pickle all consistent with each other: only the registry's pin catches it."""
    register(ws, flavor)
    key, files = package(ws, "price/1")
    bomb = touch_pickle(marker)
    for name in files:
        ws.artifacts.delete(f"{key}/{name}")
    ws.artifacts.put_bytes(f"{key}/model.pkl", bomb)

    def forge(manifest: dict[str, Any]) -> None:
        manifest.update(flavor="python", model_file="model.pkl", files={"model.pkl": _sha256(bomb)}, metadata={})

    manifest = yaml.safe_load(files[MANIFEST])
    forge(manifest)
    ws.artifacts.put_bytes(f"{key}/{MANIFEST}", yaml.safe_dump(manifest, sort_keys=False).encode())
    assert_load_refused(ws, "price/1", TamperedPackage, f"{MANIFEST} changed", trusted=True)


def test_a_registered_python_model_loads_only_when_trusted(ws: keel.Workspace) -> None:
    version = register(ws, "python", name="toy")
    assert version.flavor == "python"
    assert_load_refused(ws, "toy/1", UntrustedModel, "trusted=True")
    loaded = ws.models.load("toy/1", trusted=True)
    np.testing.assert_array_equal(loaded.predict(X), ToyModel().predict(X))


def test_a_registered_hostile_pickle_does_not_run_without_trust(ws: keel.Workspace, marker: Path) -> None:
    """Registration itself runs nothing, and an untrusted load refuses before unpickling."""
    with ws.runs.start("price") as run:
        run.log_model(BombModel(marker), "bomb", input_example=X, flavor="python")
    assert not marker.exists()
    assert_load_refused(ws, "bomb/1", UntrustedModel, "pickle")


def test_a_model_needing_a_foreign_type_is_refused_at_registration(ws: keel.Workspace, marker: Path) -> None:
    """A package that could never be loaded is not registered: the error names the type and the way out."""
    model = MarkerEstimator(marker=str(marker)).fit(X, Y)
    with pytest.raises(UnsupportedModel, match=r"helpers_models\.MarkerEstimator") as refused:
        ws.models.register(model, "custom", input_example=X)
    assert "flavor='python'" in refused.value.message
    assert not marker.exists() and ws.models.list() == [] and ws.artifacts.list("models/") == []


@pytest.mark.parametrize("trusted", [False, True])
def test_a_skops_file_needing_a_foreign_estimator_is_refused(marker: Path, trusted: bool) -> None:
    """skops would call MarkerEstimator.__setstate__ on load; keel refuses the type, trusted or not."""
    import skops.io as sio

    data = sio.dumps(MarkerEstimator(marker=str(marker)).fit(X, Y))
    with pytest.raises(UntrustedModel, match=r"helpers_models\.MarkerEstimator") as refused:
        flavor_named("sklearn").load(data, {}, trusted=trusted)
    assert "flavor='python'" in refused.value.message and not marker.exists()


@pytest.mark.parametrize("func", [os.system, np.tanh, double],
                         ids=["os.system", "numpy-ufunc", "test-module-function"])
def test_a_skops_file_with_a_foreign_function_is_refused(ws: keel.Workspace, func: Any) -> None:
    import skops.io as sio

    # not fitted through the pipeline (os.system must not be called); its last step is, so it counts as fitted
    model = make_pipeline(FunctionTransformer(func=func), DummyRegressor()).fit(X, Y) if func is np.tanh else \
        make_pipeline(FunctionTransformer(func=func), DummyRegressor().fit(X, Y))
    if func is np.tanh:  # numpy's own functions are fine
        ws.models.register(model, "fn", signature=infer_signature(X))
        ws.models.load("fn/1")
        return
    with pytest.raises(UnsupportedModel, match=func.__name__):  # no example: os.system must not be called
        ws.models.register(model, "fn", signature=infer_signature(X))
    with pytest.raises(UntrustedModel, match="keel does not trust"):
        flavor_named("sklearn").load(sio.dumps(model), {}, trusted=False)


@pytest.mark.parametrize("flavor", ["sklearn", "lightgbm", "xgboost"])
@pytest.mark.parametrize("payload", PAYLOADS)
def test_native_loaders_never_unpickle(marker: Path, flavor: str, payload: str) -> None:
    """Below the hash check: hand each safe-format loader a pickle directly."""
    with pytest.raises((TamperedPackage, UntrustedModel)):
        flavor_named(flavor).load(PAYLOADS[payload](marker), {}, trusted=True)
    assert not marker.exists()


@pytest.mark.parametrize("trusted", [False, True])
def test_a_crafted_skops_file_calling_a_numpy_function_never_runs(marker: Path, trusted: bool) -> None:
    """numpy.testing's ``runstring`` execs its argument: a module name alone must not make a type trusted."""
    with pytest.raises(UntrustedModel, match="runstring"):
        flavor_named("sklearn").load(exec_skops(marker), {}, trusted=trusted)


@pytest.mark.parametrize("module, name, value, call_with_args", [
    ("sklearn", "show_versions", {}, False),  # a dict node calls its type with no arguments
    ("numpy", "save", ["x.npy"], False),  # a list node calls its type with the content
    ("numpy.testing._private.utils", "runstring", DummyRegressor(), False),  # an object node: __new__, setstate
    ("numpy", "memmap", ("x.bin", "uint8", "w+", 0, (1,)), True),  # a class, called with the file's arguments
    ("builtins", "exec", ("open('x.txt', 'w')",), True),
], ids=["dict-calls-function", "list-calls-function", "object-of-function", "class-with-args", "builtins-exec"])
def test_crafted_skops_nodes_that_would_call_something_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   module: str, name: str, value: Any,
                                                                   call_with_args: bool) -> None:
    monkeypatch.chdir(tmp_path)
    data = crafted_skops(module, name, value, call_with_args=call_with_args)
    with pytest.raises(UntrustedModel, match=name):
        flavor_named("sklearn").load(data, {}, trusted=False)
    assert list(tmp_path.iterdir()) == []


def test_garbage_in_place_of_a_skops_file_is_reported_as_unreadable() -> None:
    with pytest.raises(TamperedPackage, match="cannot be read"):
        flavor_named("sklearn").load(b"PK\x03\x04 not really a zip", {}, trusted=False)


# -- bad input through the registry ------------------------------------------------------------------------

def _state(ws: keel.Workspace) -> tuple[Any, ...]:
    versions = {m.name: [v.version for v in ws.models.versions(m.name)] for m in ws.models.list()}
    return versions, sorted(ws.artifacts.list("models/"))


@pytest.fixture
def registry(any_ws: keel.Workspace) -> Iterator[keel.Workspace]:
    register(any_ws, "sklearn")
    before = _state(any_ws)
    yield any_ws
    assert _state(any_ws) == before, "a refused call changed the registry or left package files behind"


BAD_REFS = [
    ("nope", NotFound, "unknown model 'nope'"),
    ("nope/1", NotFound, "unknown model 'nope'"),
    ("price/2", NotFound, "no version 2"),
    ("price@champion", NotFound, "no alias 'champion'"),
    ("price@production", NotFound, "no alias 'production'"),
    ("price@2024-01-01", InvalidRef, "not by time"),
    ("price@", InvalidRef, "malformed ref"),
    ("table:price@3", InvalidRef, "not a model ref"),
    ("../price/1", InvalidRef, "malformed ref"),
]


def test_unknown_or_malformed_refs_are_refused(registry: keel.Workspace) -> None:
    """One workspace per backend for every case (a fresh PostgreSQL database costs a second)."""
    for ref, error, fragment in BAD_REFS:
        for call in (registry.models.version, registry.models.load, registry.models.show):
            with pytest.raises(error) as info:
                call(ref)
            assert fragment in info.value.message, (ref, call, info.value.message)


def _unfitted() -> Any:
    return LinearRegression()


BAD_REGISTRATIONS = [
    (object(), {"input_example": X}, UnsupportedModel, "builtins.object"),
    (ToyModel(), {"input_example": X}, UnsupportedModel, "flavor='python'"),
    (NoPredict(), {"input_example": X, "flavor": "python"}, UnsupportedModel, "helpers_models.NoPredict"),
    (_unfitted(), {"input_example": X}, InvalidInput, "is it fitted"),
    (LinearRegression().fit(X, Y), {}, InvalidInput, "input_example"),
    (LinearRegression().fit(X, Y), {"input_example": X.iloc[:0]}, InvalidInput, "no rows"),
    (LinearRegression().fit(X, Y), {"input_example": X[["a"]]}, InvalidInput, "cannot predict on its input"),
    (LinearRegression().fit(X, Y), {"input_example": X.to_numpy()}, InvalidInput, "must be a table"),
    (LinearRegression().fit(X, Y), {"input_example": X, "flavor": "pickle"}, InvalidInput, "unknown flavor"),
    (LinearRegression().fit(X, Y), {"input_example": X, "flavor": "lightgbm"}, UnsupportedModel, "lightgbm flavor"),
    (LinearRegression().fit(X, Y), {"signature": {"columns": ["a"]}}, InvalidInput, "malformed signature"),
]


def _unpicklable() -> ToyModel:
    model = ToyModel()
    model.hook = lambda frame: frame  # lambdas do not pickle
    return model


def test_refused_registrations_leave_nothing_behind(registry: keel.Workspace) -> None:
    """The ``registry`` fixture checks afterwards: same versions, no package files left in the store."""
    cases = [*BAD_REGISTRATIONS,
             (_unpicklable(), {"input_example": X, "flavor": "python"}, UnsupportedModel, "cannot be pickled")]
    for model, options, error, fragment in cases:
        for name in ("price", "newmodel"):
            with pytest.raises(error) as info:
                registry.models.register(model, name, **options)
            assert fragment in info.value.message, (options, info.value.message)
            with registry.runs.start("price") as run, pytest.raises(error):
                run.log_model(model, name, **options)
    assert not registry.models.exists("newmodel")


def test_invalid_model_names_are_refused(registry: keel.Workspace) -> None:
    for name in ["bad name", "../escape", "", "a/b", ".hidden"]:
        with pytest.raises(InvalidRef, match="invalid model name"):
            registry.models.register(LinearRegression().fit(X, Y), name, input_example=X)


# -- the CLI: one line, exit 2 ------------------------------------------------------------------------------

def keel_cli(*args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEEL_")}
    env.update(COLUMNS="250", NO_COLOR="1")
    return subprocess.run([sys.executable, "-m", "keel.cli.main", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=180)


def user_error(proc: subprocess.CompletedProcess[str], *fragments: str) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def cli_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace with price/1 (sklearn), toy/1 (python) and tampered/1 (a changed model file), plus inputs."""
    root = tmp_path_factory.mktemp("cli") / "ws"
    with keel.init(root) as ws:
        register(ws, "sklearn")
        register(ws, "python", name="toy")
        register(ws, "sklearn", name="tampered")
        _, files = package(ws, "tampered/1")
        put(ws, "tampered/1", "model.skops", flip_one_byte(files["model.skops"]))
    X.to_csv(root / "good.csv", index=False)
    X.drop(columns=["b"]).to_csv(root / "bad.csv", index=False)
    X.assign(b="text").to_csv(root / "text.csv", index=False)
    return root


@pytest.mark.slow
def test_cli_reports_each_refusal_in_one_line(cli_workspace: Path) -> None:
    """Each command is its own process (a second or two of imports), so they run side by side."""
    commands = {
        "ok": ("models", "predict", "price/1", "--input", "good.csv"),
        "unknown": ("models", "show", "nope/1"),
        "missing-column": ("models", "predict", "price/1", "--input", "bad.csv"),
        "wrong-type": ("models", "predict", "price/1", "--input", "text.csv"),
        "time-ref": ("models", "predict", "price@2024-01-01", "--input", "good.csv"),
        "tampered": ("models", "predict", "tampered/1", "--input", "good.csv"),
        "untrusted": ("models", "predict", "toy/1", "--input", "good.csv"),
    }
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        done = dict(zip(commands, pool.map(lambda args: keel_cli(*args, cwd=cli_workspace), commands.values()),
                        strict=True))
    assert done["ok"].returncode == 0, done["ok"].stderr
    assert "prediction" in done["ok"].stdout
    user_error(done["unknown"], "unknown model 'nope'")
    user_error(done["missing-column"], "missing column(s) b")
    user_error(done["wrong-type"], "column 'b' is string")
    user_error(done["time-ref"], "not by time")
    user_error(done["tampered"], "model.skops changed")
    user_error(done["untrusted"], "--trusted")
