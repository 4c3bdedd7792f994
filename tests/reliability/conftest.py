"""Fixtures of the reliability cases (SECURITY-CASES K): a fresh, empty database per test.

Unlike the shared ``database_url`` fixture, the PostgreSQL variant here is a scratch database
of its own, so a test may terminate its connections (S60) or race start-up jobs on an empty
schema (S59) without touching any other test's data.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.database import POSTGRES_ENV, postgres_base_url, scratch_postgres_database

POSTGRES_SKIP = (
    f"PostgreSQL tests need {POSTGRES_ENV} (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)"
)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test (skips when the URL is unset)."""
    if postgres_base_url() is None:
        pytest.skip(POSTGRES_SKIP)
    with scratch_postgres_database() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def fresh_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: a SQLite file, or (when configured) a scratch PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'charter.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url
