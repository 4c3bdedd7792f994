"""Fixtures of the CLI tests: a ``charter`` runner bound to one database, and a context on it."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlalchemy import text

from authserver.config.settings import CharterSettings
from authserver.context import AuthServer
from authserver.storage.models import Base
from authserver.storage.schema import prepare_database
from tests.support.cli_runner import Charter


@pytest.fixture(autouse=True)
def cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2id with small costs: the CLI's behaviour, not the hash's cost, is under test."""
    monkeypatch.setattr(
        "authserver.accounts.passwords.new_hasher",
        functools.partial(PasswordHasher, time_cost=1, memory_cost=1024, parallelism=1),
    )


@pytest.fixture
def cli(database_url: str, tmp_path: Path) -> Iterator[Charter]:
    """A runner on a migrated, empty database (SQLite file, or the session's PostgreSQL db)."""
    if database_url.startswith("postgresql"):
        server = AuthServer.build(
            CharterSettings(data_dir=tmp_path / "data", database_url=database_url)
        )
        prepare_database(server.database.engine)
        names = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
        with server.database.engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {names} CASCADE"))
        server.database.dispose()
    yield Charter(tmp_path / "data", database_url)


@pytest.fixture
def server(cli: Charter) -> Iterator[AuthServer]:
    """A context on the CLI's database, for arranging rows and checking results."""
    made = AuthServer.build(CharterSettings(data_dir=cli.data_dir, database_url=cli.database_url))
    prepare_database(made.database.engine)
    yield made
    made.database.dispose()


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Call to make the CLI believe a person sits at a terminal."""

    def attach() -> None:
        monkeypatch.setattr("authserver.cli.output.stdin_is_tty", lambda: True)

    return attach
