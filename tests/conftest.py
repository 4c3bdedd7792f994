"""Shared fixtures: a database per test (SQLite file, and PostgreSQL when its URL is set),
an authorization server context on it, and an in-process HTTP client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from authserver.config.settings import CharterSettings
from authserver.context import AuthServer
from authserver.endpoints.app import create_app
from authserver.storage.db import Database
from authserver.storage.models import Base
from authserver.storage.schema import prepare_database
from resourceserver import storage as resource_storage
from tests.support.database import POSTGRES_ENV, postgres_base_url, scratch_postgres_database

TEST_ISSUER = "http://127.0.0.1:8000"
TEST_KEY_SECRET = "test-key-encryption-secret"


@pytest.fixture(scope="session")
def postgres_database_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session (skips when the URL is unset)."""
    if postgres_base_url() is None:
        pytest.skip(
            f"PostgreSQL tests need {POSTGRES_ENV} (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)"
        )
    with scratch_postgres_database() as url:
        yield url


@pytest.fixture(scope="session")
def postgres_resource_url() -> Iterator[str]:
    """A PostgreSQL database of its own for tests that make and drop the resource server's
    tables themselves (``metadata.drop_all``), apart from the migrated session database."""
    if postgres_base_url() is None:
        pytest.skip(
            f"PostgreSQL tests need {POSTGRES_ENV} (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)"
        )
    with scratch_postgres_database() as url:
        yield url


def _truncate_all(database: Database) -> None:
    # The session's PostgreSQL database is shared: tests of the resource server alone drop and
    # make its tables on it, so they are made again here (idempotent) and emptied with the rest.
    resource_storage.create_tables(database.engine)
    tables = [*Base.metadata.sorted_tables, *resource_storage.metadata.sorted_tables]
    names = ", ".join(f'"{table.name}"' for table in reversed(tables))
    with database.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} CASCADE"))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test runs on SQLite and, when ``CHARTER_TEST_POSTGRES_URL`` is set, PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'charter.db'}"
    url: str = request.getfixturevalue("postgres_database_url")
    return url


@pytest.fixture
def make_server(database_url: str, tmp_path: Path) -> Iterator[Callable[..., AuthServer]]:
    """Factory of ready authorization server contexts (schema made, signing key present)."""
    made: list[AuthServer] = []

    def factory(clock: Callable[[], float] | None = None, **overrides: Any) -> AuthServer:
        values: dict[str, Any] = {
            "issuer": TEST_ISSUER,
            "data_dir": tmp_path / "data",
            "database_url": database_url,
            "key_encryption_key": TEST_KEY_SECRET,
        }
        values.update(overrides)
        settings = CharterSettings(**values)
        kwargs: dict[str, Any] = {"clock": clock} if clock else {}
        server = AuthServer.build(settings, **kwargs)
        if not made:
            prepare_database(server.database.engine)
            if server.database.engine.dialect.name == "postgresql":
                _truncate_all(server.database)
        server.keys.ensure_signing_key()
        made.append(server)
        return server

    yield factory
    for server in made:
        server.database.dispose()


@pytest.fixture
def auth_server(make_server: Callable[..., AuthServer]) -> AuthServer:
    """An authorization server context with default test settings."""
    return make_server()


@pytest.fixture
async def as_client(auth_server: AuthServer) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process HTTP client of the authorization server app."""
    transport = httpx.ASGITransport(app=create_app(auth_server))
    async with httpx.AsyncClient(transport=transport, base_url=TEST_ISSUER) as client:
        yield client
