"""Shared fixtures: fresh workspaces on SQLite (always) and PostgreSQL (when KEEL_TEST_POSTGRES_URL is set)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

import keel
from keel.demo.generator import LISTINGS_CONTRACT, generate_listings, write_listings

POSTGRES_URL = os.environ.get("KEEL_TEST_POSTGRES_URL")
REDIS_URL = os.environ.get("KEEL_TEST_REDIS_URL")
needs_postgres = pytest.mark.skipif(
    not POSTGRES_URL, reason="KEEL_TEST_POSTGRES_URL is not set (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)"
)
needs_redis = pytest.mark.skipif(not REDIS_URL, reason="KEEL_TEST_REDIS_URL is not set (e.g. redis://127.0.0.1:6379/0)")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No KEEL_* setting from the developer's shell leaks into a test."""
    for name in list(os.environ):
        if name.startswith("KEEL_") and not name.startswith("KEEL_TEST_"):
            monkeypatch.delenv(name)


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[keel.Workspace]:
    """A fresh embedded workspace (SQLite + local Delta + local artifacts)."""
    workspace = keel.init(tmp_path / "ws")
    yield workspace
    workspace.close()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A brand-new PostgreSQL database for one test, dropped afterwards."""
    if not POSTGRES_URL:
        pytest.skip("KEEL_TEST_POSTGRES_URL is not set")
    name = f"keel_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_ws(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[keel.Workspace]:
    """The same workspace on each metadata backend; PostgreSQL is skipped when not configured."""
    overrides = {}
    if request.param == "postgresql":
        overrides["metadata_url"] = request.getfixturevalue("postgres_url")
    workspace = keel.init(tmp_path / "ws", **overrides)
    yield workspace
    workspace.close()


@pytest.fixture(scope="session")
def listings() -> pd.DataFrame:
    """Months 1-6 of the demo's listings, with bad rows, duplicates and re-posts."""
    return generate_listings(range(1, 7), rows_per_month=400)


@pytest.fixture
def listings_csv(tmp_path: Path, listings: pd.DataFrame) -> Path:
    return write_listings(listings, tmp_path / "listings.csv")


@pytest.fixture
def contract_path() -> Path:
    return LISTINGS_CONTRACT
