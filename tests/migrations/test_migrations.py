"""The Alembic migrations build exactly the models' schema, idempotently, on SQLite and
PostgreSQL, also when several workers prepare the same database at once."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, MetaData, inspect

from authserver.storage.db import make_engine
from authserver.storage.models import Base
from authserver.storage.schema import (
    UnversionedDatabaseError,
    current_revision,
    downgrade,
    head_revision,
    packaged_head,
    prepare_database,
)
from resourceserver.storage import metadata as resource_metadata
from tests.support.database import postgres_base_url, scratch_postgres_database

T = TypeVar("T")


def models_metadata() -> MetaData:
    """Both packages' tables in one ``MetaData`` (what the migrations must produce)."""
    combined = MetaData(naming_convention=dict(Base.metadata.naming_convention))
    for source in (Base.metadata, resource_metadata):
        for table in source.tables.values():
            table.to_metadata(combined)
    return combined


REGEN_HINT = "models changed: run scripts/regen_initial_migration.sh (or add a new revision)"


def schema_differences(engine: Engine) -> list[Any]:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, models_metadata()))


def table_names(engine: Engine) -> set[str]:
    with engine.connect() as connection:
        return set(inspect(connection).get_table_names())


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An engine on an empty database: a new SQLite file, or a scratch PostgreSQL database."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'migrated.db'}")
        yield engine
        engine.dispose()
        return
    if postgres_base_url() is None:
        pytest.skip("PostgreSQL migration tests need CHARTER_TEST_POSTGRES_URL")
    with scratch_postgres_database() as url:
        engine = make_engine(url, pool_size=5)
        yield engine
        engine.dispose()


def test_head_is_the_newest_revision() -> None:
    assert head_revision() == "0011"


def test_packaged_head_read_without_alembic_is_alembics_head() -> None:
    assert packaged_head() == head_revision()


def test_a_start_on_a_current_database_does_not_load_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'current.db'}"
    engine = make_engine(url)
    prepare_database(engine)
    engine.dispose()
    code = (
        "import sys\n"
        "from authserver.storage.db import make_engine\n"
        "from authserver.storage.schema import prepare_database\n"
        f"prepare_database(make_engine({url!r}))\n"
        "print('alembic' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "False"


def test_upgrade_on_empty_database_matches_the_models(empty_engine: Engine) -> None:
    assert current_revision(empty_engine) is None
    prepare_database(empty_engine)
    assert current_revision(empty_engine) == head_revision()
    assert schema_differences(empty_engine) == [], REGEN_HINT
    expected = set(models_metadata().tables) | {"alembic_version"}
    assert table_names(empty_engine) == expected


def test_prepare_database_is_idempotent(empty_engine: Engine) -> None:
    prepare_database(empty_engine)
    prepare_database(empty_engine)
    assert current_revision(empty_engine) == head_revision()
    assert schema_differences(empty_engine) == []


def test_downgrade_to_base_drops_every_table(empty_engine: Engine) -> None:
    prepare_database(empty_engine)
    downgrade(empty_engine, "base")
    assert current_revision(empty_engine) is None
    assert table_names(empty_engine) <= {"alembic_version"}
    prepare_database(empty_engine)
    assert schema_differences(empty_engine) == []


def at_once(
    url: str, workers: int, work: Callable[[Engine], T]
) -> tuple[list[T], list[BaseException]]:
    """``workers`` engines on ``url`` each run ``work`` at the same moment (a barrier), as
    worker processes starting together do; what they returned and the errors they met."""
    engines = [make_engine(url, pool_size=1) for _ in range(workers)]
    barrier = threading.Barrier(workers)
    results: list[T] = []
    errors: list[BaseException] = []

    def run(engine: Engine) -> None:
        barrier.wait()
        try:
            results.append(work(engine))
        except BaseException as exc:  # collected and asserted by the caller
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(engine,)) for engine in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for engine in engines:
        engine.dispose()
    return results, errors


def test_s59_concurrent_workers_prepare_the_same_database(empty_engine: Engine) -> None:
    """Four workers starting at once: every one succeeds and the schema is made once."""
    url = empty_engine.url.render_as_string(hide_password=False)
    _, errors = at_once(url, 4, prepare_database)
    assert errors == []
    assert current_revision(empty_engine) == head_revision()
    assert schema_differences(empty_engine) == []


def journal_mode(engine: Engine) -> str:
    """The journal mode a new connection of ``engine`` sees."""
    with engine.connect() as connection:
        return str(connection.exec_driver_sql("PRAGMA journal_mode").scalar())


def test_s59_workers_opening_a_new_sqlite_file_at_once_all_connect(tmp_path: Path) -> None:
    """Switching a new SQLite file to WAL needs an exclusive lock that SQLite refuses at once
    (no busy wait) while another worker holds the file: every opener must still connect, in WAL.
    Repeated because the race is narrow (it failed about one round in ten before the retry)."""
    for round_number in range(30):
        url = f"sqlite:///{tmp_path / f'race-{round_number}.db'}"
        modes, errors = at_once(url, 4, journal_mode)
        assert errors == [], f"round {round_number}"
        assert modes == ["wal"] * 4


def test_alembic_command_line_uses_the_ini_and_x_database_url(tmp_path: Path) -> None:
    """``alembic -x database_url=…`` from the project root migrates that database."""
    root = Path(__file__).resolve().parents[2]
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    env = {key: value for key, value in os.environ.items() if not key.startswith("CHARTER_")}
    env["CHARTER_DATA_DIR"] = str(tmp_path / "unused")
    for args in (["upgrade", "head"], ["check"]):
        done = subprocess.run(
            [sys.executable, "-m", "alembic", "-c", str(root / "alembic.ini"),
             "-x", f"database_url={url}", *args],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    engine = make_engine(url)
    try:
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()
    assert not (tmp_path / "unused" / "charter.db").exists()


def test_a_database_made_without_migrations_is_refused_clearly(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        Base.metadata.create_all(engine)
        with pytest.raises(UnversionedDatabaseError, match="stamp head"):
            prepare_database(engine)
    finally:
        engine.dispose()
