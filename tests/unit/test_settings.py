"""settings.py: arguments > KEEL_* env > keel.toml > defaults; paths relative to the workspace root."""

from __future__ import annotations

from pathlib import Path

import pytest

from keel.errors import InvalidInput, NotFound, WorkspaceNotFound
from keel.settings import CONFIG_FILE, STATE_DIR, Settings, find_workspace_root


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "ws"
    folder.mkdir()
    return folder.resolve()


def write_toml(root: Path, text: str) -> None:
    (root / CONFIG_FILE).write_text(text, encoding="utf-8")


# ---------------------------------------------------------------- each layer


def test_defaults_live_under_the_state_folder(root: Path) -> None:
    settings = Settings.load(root, env={})
    state = root / STATE_DIR
    assert settings.root == root
    assert settings.metadata_url == f"sqlite:///{state / 'keel.db'}"
    assert settings.data_url == str(state / "data")
    assert settings.artifacts_url == str(state / "artifacts")
    assert settings.sqlite_busy_timeout_ms == 30_000
    assert settings.storage_options == {}
    assert settings.user  # some non-empty user name


def test_toml_overrides_defaults(root: Path) -> None:
    write_toml(root, '[keel]\ndata_url = "s3://bucket/data"\nuser = "toml-user"\nsqlite_busy_timeout_ms = 5\n')
    settings = Settings.load(root, env={})
    assert settings.data_url == "s3://bucket/data"
    assert settings.user == "toml-user"
    assert settings.sqlite_busy_timeout_ms == 5
    assert settings.artifacts_url == str(root / STATE_DIR / "artifacts")  # untouched keys keep defaults


def test_toml_without_section_is_read_at_top_level(root: Path) -> None:
    write_toml(root, 'user = "top-level"\n')
    assert Settings.load(root, env={}).user == "top-level"


def test_toml_storage_options(root: Path) -> None:
    write_toml(root, '[keel]\ndata_url = "s3://b/d"\n[keel.storage_options]\nregion = "eu-west-1"\n')
    assert Settings.load(root, env={}).storage_options == {"region": "eu-west-1"}


def test_env_overrides_toml(root: Path) -> None:
    write_toml(root, '[keel]\nuser = "toml-user"\nsqlite_busy_timeout_ms = 5\ndata_url = "s3://toml/data"\n')
    env = {"KEEL_USER": "env-user", "KEEL_SQLITE_BUSY_TIMEOUT_MS": "7", "KEEL_DATA_URL": "s3://env/data"}
    settings = Settings.load(root, env=env)
    assert settings.user == "env-user"
    assert settings.sqlite_busy_timeout_ms == 7
    assert settings.data_url == "s3://env/data"


def test_env_overrides_defaults_without_toml(root: Path) -> None:
    settings = Settings.load(root, env={"KEEL_METADATA_URL": "postgresql+psycopg://db/keel"})
    assert settings.metadata_url == "postgresql+psycopg://db/keel"


def test_env_ignores_unrelated_variables(root: Path) -> None:
    settings = Settings.load(root, env={"USER": "someone-else", "KEEL_UNKNOWN": "x", "DATA_URL": "s3://no"})
    assert settings.data_url == str(root / STATE_DIR / "data")


def test_env_is_read_from_os_environ_when_not_passed(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEEL_USER", "from-os-environ")
    assert Settings.load(root).user == "from-os-environ"
    assert Settings.load(root, env={}).user != "from-os-environ"  # an explicit env replaces os.environ


def test_arguments_override_env_and_toml(root: Path) -> None:
    write_toml(root, '[keel]\nuser = "toml-user"\ndata_url = "s3://toml/data"\n')
    env = {"KEEL_USER": "env-user", "KEEL_DATA_URL": "s3://env/data"}
    settings = Settings.load(root, env=env, user="arg-user", data_url="s3://arg/data")
    assert settings.user == "arg-user"
    assert settings.data_url == "s3://arg/data"


def test_none_arguments_do_not_override(root: Path) -> None:
    settings = Settings.load(root, env={"KEEL_USER": "env-user"}, user=None)
    assert settings.user == "env-user"


def test_full_precedence_chain_per_key(root: Path) -> None:
    write_toml(root, '[keel]\nuser = "toml"\nartifacts_url = "s3://toml/a"\ndata_url = "s3://toml/d"\n')
    env = {"KEEL_ARTIFACTS_URL": "s3://env/a", "KEEL_DATA_URL": "s3://env/d"}
    settings = Settings.load(root, env=env, data_url="s3://arg/d")
    assert settings.data_url == "s3://arg/d"  # argument
    assert settings.artifacts_url == "s3://env/a"  # env
    assert settings.user == "toml"  # toml
    assert settings.sqlite_busy_timeout_ms == 30_000  # default


def test_root_cannot_be_overridden_by_toml(root: Path) -> None:
    write_toml(root, '[keel]\nroot = "/elsewhere"\n')
    with pytest.raises(InvalidInput, match="root"):
        Settings.load(root, env={})


def test_settings_are_frozen(root: Path) -> None:
    settings = Settings.load(root, env={})
    with pytest.raises(ValueError, match="frozen"):
        settings.user = "other"  # type: ignore[misc]


# ---------------------------------------------------------------- relative paths


def test_relative_paths_in_toml_resolve_against_root_not_cwd(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    write_toml(
        root,
        '[keel]\ndata_url = "rel/data"\nartifacts_url = "./art"\nmetadata_url = "sqlite:///db/keel.db"\n',
    )
    settings = Settings.load(root, env={})
    assert settings.data_url == str(root / "rel" / "data")
    assert settings.artifacts_url == str(root / "art")
    assert settings.metadata_url == f"sqlite:///{root / 'db' / 'keel.db'}"
    assert str(elsewhere) not in settings.data_url + settings.artifacts_url + settings.metadata_url


def test_relative_root_argument_is_resolved(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(root.parent)
    settings = Settings.load(Path(root.name), env={})
    assert settings.root == root
    assert settings.data_url == str(root / STATE_DIR / "data")


def test_parent_relative_paths_are_normalised(root: Path) -> None:
    write_toml(root, '[keel]\ndata_url = "../shared/data"\n')
    assert Settings.load(root, env={}).data_url == str(root.parent / "shared" / "data")


def test_absolute_and_remote_urls_are_kept(root: Path, tmp_path: Path) -> None:
    absolute = tmp_path / "abs"
    write_toml(
        root,
        f'[keel]\ndata_url = "{absolute}"\nartifacts_url = "gs://bucket/a"\n'
        f'metadata_url = "sqlite:///{tmp_path / "abs.db"}"\n',
    )
    settings = Settings.load(root, env={})
    assert settings.data_url == str(absolute)
    assert settings.artifacts_url == "gs://bucket/a"
    assert settings.metadata_url == f"sqlite:///{tmp_path / 'abs.db'}"


def test_in_memory_sqlite_and_postgres_urls_are_kept(root: Path) -> None:
    assert Settings.load(root, env={}, metadata_url="sqlite:///:memory:").metadata_url == "sqlite:///:memory:"
    url = "postgresql+psycopg://u@h:5432/db"
    assert Settings.load(root, env={}, metadata_url=url).metadata_url == url


# ---------------------------------------------------------------- bad configuration


def test_unknown_key_in_toml_is_named(root: Path) -> None:
    write_toml(root, '[keel]\ndata_url = "x"\ndata_ulr = "typo"\n')
    with pytest.raises(InvalidInput) as info:
        Settings.load(root, env={})
    message = str(info.value)
    assert "data_ulr" in message
    assert "data_url" in message  # lists the known keys to help fix the typo
    assert CONFIG_FILE in message


def test_several_unknown_keys_are_all_named(root: Path) -> None:
    write_toml(root, 'colour = "red"\nsize = 3\n')
    with pytest.raises(InvalidInput, match="colour, size"):
        Settings.load(root, env={})


@pytest.mark.parametrize("text", ["[keel\n", 'data_url = "unterminated\n', "a = = 1\n", "[keel]\nx = 1\nx = 2\n"])
def test_invalid_toml_is_invalid_input(root: Path, text: str) -> None:
    write_toml(root, text)
    with pytest.raises(InvalidInput, match="not valid TOML"):
        Settings.load(root, env={})


def test_wrongly_typed_value_is_invalid_input_naming_the_setting(root: Path) -> None:
    write_toml(root, '[keel]\nsqlite_busy_timeout_ms = "soon"\n')
    with pytest.raises(InvalidInput, match="sqlite_busy_timeout_ms"):
        Settings.load(root, env={})


def test_wrongly_typed_env_value_is_invalid_input(root: Path) -> None:
    with pytest.raises(InvalidInput, match="sqlite_busy_timeout_ms"):
        Settings.load(root, env={"KEEL_SQLITE_BUSY_TIMEOUT_MS": "soon"})


# ---------------------------------------------------------------- find_workspace_root


def test_walks_up_from_a_nested_folder(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_toml(root, "")
    nested = root / "a" / "b" / "c"
    nested.mkdir(parents=True)
    monkeypatch.chdir(nested)
    assert find_workspace_root(env={}) == root


def test_nearest_workspace_wins(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_toml(root, "")
    inner = root / "projects" / "inner"
    inner.mkdir(parents=True)
    write_toml(inner, "")
    (inner / "src").mkdir()
    monkeypatch.chdir(inner / "src")
    assert find_workspace_root(env={}) == inner


def test_finds_workspace_in_cwd_itself(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_toml(root, "")
    monkeypatch.chdir(root)
    assert find_workspace_root(env={}) == root


def test_a_folder_named_keel_toml_does_not_count(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (root / CONFIG_FILE).mkdir()
    monkeypatch.chdir(root)
    with pytest.raises(WorkspaceNotFound):
        find_workspace_root(env={})


def test_explicit_start(root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_toml(root, "")
    monkeypatch.chdir(tmp_path)
    assert find_workspace_root(root, env={}) == root
    assert find_workspace_root(str(root), env={}) == root


def test_honours_keel_workspace(root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_toml(root, "")
    other = tmp_path / "other"
    other.mkdir()
    write_toml(other, "")
    monkeypatch.chdir(other)  # cwd is a workspace too, but KEEL_WORKSPACE wins
    assert find_workspace_root(env={"KEEL_WORKSPACE": str(root)}) == root


def test_explicit_start_beats_keel_workspace(root: Path, tmp_path: Path) -> None:
    write_toml(root, "")
    other = tmp_path / "other"
    other.mkdir()
    write_toml(other, "")
    assert find_workspace_root(other, env={"KEEL_WORKSPACE": str(root)}) == other


def test_keel_workspace_without_config_raises_with_init_hint(root: Path) -> None:
    with pytest.raises(WorkspaceNotFound) as info:
        find_workspace_root(env={"KEEL_WORKSPACE": str(root)})
    assert "keel init" in str(info.value)
    assert str(root) in str(info.value)


def test_no_workspace_anywhere_raises_with_init_hint(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nested = root / "x"
    nested.mkdir()
    monkeypatch.chdir(nested)
    if any((folder / CONFIG_FILE).is_file() for folder in nested.parents):
        pytest.skip("a keel.toml exists above the temporary folder")
    with pytest.raises(WorkspaceNotFound) as info:
        find_workspace_root(env={})
    assert "keel init" in str(info.value)
    assert isinstance(info.value, NotFound)
    assert info.value.exit_code == 2


def test_empty_keel_workspace_is_ignored(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_toml(root, "")
    monkeypatch.chdir(root)
    assert find_workspace_root(env={"KEEL_WORKSPACE": ""}) == root


def test_reads_os_environ_when_env_not_passed(root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_toml(root, "")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KEEL_WORKSPACE", str(root))
    assert find_workspace_root() == root
