"""Fixtures of the end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.database import POSTGRES_ENV, postgres_base_url, scratch_postgres_database


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test (skips when the URL is unset)."""
    if postgres_base_url() is None:
        pytest.skip(f"this test needs PostgreSQL: set {POSTGRES_ENV}")
    with scratch_postgres_database() as url:
        yield url
