"""Test databases: a SQLite file per test, or a fresh PostgreSQL database per test session."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

POSTGRES_ENV = "CHARTER_TEST_POSTGRES_URL"


def postgres_base_url() -> str | None:
    """The server URL from ``CHARTER_TEST_POSTGRES_URL`` (None when unset)."""
    return os.environ.get(POSTGRES_ENV) or None


@contextmanager
def scratch_postgres_database() -> Iterator[str]:
    """Create a uniquely named database on the test server; drop it afterwards."""
    base = postgres_base_url()
    assert base is not None
    name = f"charter_t_{secrets.token_hex(6)}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()
