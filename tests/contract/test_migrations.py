"""schema.py (what the code queries) and the Alembic history (what creates the tables) must agree."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from keel.storage.db import MIGRATIONS, Database, head_revision
from keel.storage.schema import metadata


@pytest.fixture(params=["sqlite", "postgresql"])
def migrated(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    url = f"sqlite:///{tmp_path / 'keel.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    db = Database(url)
    db.migrate()
    yield db
    db.dispose()


def test_migrations_create_exactly_the_schema_the_code_uses(migrated: Database) -> None:
    with migrated.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    assert diff == [], f"storage/schema.py and storage/migrations differ: {diff}"


def test_the_head_read_from_file_names_is_alembics_and_an_open_store_is_not_migrated_again(migrated: Database) -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert head_revision() == ScriptDirectory.from_config(config).get_current_head()
    with migrated.read() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == head_revision()
    migrated.migrate()  # the fast path: one query, no upgrade
