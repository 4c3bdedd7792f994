"""Migration 0003 on databases that already hold users: keys are filled in, and names that
collide once case and width are ignored stop the upgrade with a message and no change."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, text

from authserver.cli.main import charter
from authserver.storage.db import make_engine
from authserver.storage.schema import current_revision, head_revision, upgrade
from tests.migrations.test_migrations import empty_engine, schema_differences
from tests.support.live import free_port

__all__ = ["empty_engine"]  # the fixture (SQLite file, and PostgreSQL when configured)

INSERT_USER = text(
    "INSERT INTO users (id, username, password_hash, is_admin, disabled, created_at, "
    "password_changed_at) VALUES (:id, :username, 'hash', false, false, 1, 1)"
)


def add_users(engine: Engine, *names: str) -> None:
    with engine.begin() as connection:
        for index, name in enumerate(names):
            connection.execute(INSERT_USER, {"id": f"user-{index}", "username": name})


def test_existing_users_get_their_keys(empty_engine: Engine) -> None:
    upgrade(empty_engine, "0002")
    add_users(empty_engine, "Admin", "Stra\u00dfe", "bob")
    upgrade(empty_engine)
    assert current_revision(empty_engine) == head_revision()
    assert schema_differences(empty_engine) == []
    with empty_engine.connect() as connection:
        rows = connection.execute(
            text("SELECT username, username_key, must_change_password FROM users ORDER BY id")
        ).all()
    assert [tuple(row) for row in rows] == [
        ("Admin", "admin", False),
        ("Stra\u00dfe", "strasse", False),
        ("bob", "bob", False),
    ]


def test_colliding_names_stop_the_upgrade_and_change_nothing(empty_engine: Engine) -> None:
    upgrade(empty_engine, "0002")
    add_users(empty_engine, "Admin", "carol", "admin")
    with pytest.raises(RuntimeError) as raised:
        upgrade(empty_engine)
    message = str(raised.value)
    assert "'Admin' (id user-0) and 'admin' (id user-2)" in message
    assert "UPDATE users SET username" in message
    assert "start Charter again" in message
    assert "carol" not in message
    assert current_revision(empty_engine) == "0002"
    with empty_engine.connect() as connection:
        names = connection.execute(text("SELECT username FROM users ORDER BY id")).scalars()
        assert list(names) == ["Admin", "carol", "admin"]
    # Following the advice lets the upgrade through.
    with empty_engine.begin() as connection:
        connection.execute(text("UPDATE users SET username = 'admin-2' WHERE id = 'user-2'"))
    upgrade(empty_engine)
    assert current_revision(empty_engine) == head_revision()
    assert schema_differences(empty_engine) == []


def test_names_too_long_once_normalized_stop_the_upgrade(empty_engine: Engine) -> None:
    """U+FDFA expands to 18 characters under NFKC: 40 of them fit the name column but not the
    key's 512, so the upgrade stops with a message instead of a raw database error."""
    upgrade(empty_engine, "0002")
    add_users(empty_engine, "\ufdfa" * 40, "bob")
    with pytest.raises(RuntimeError, match=r"longer than 512 characters once normalized") as raised:
        upgrade(empty_engine)
    assert "(id user-0)" in str(raised.value)
    assert "bob" not in str(raised.value)
    assert current_revision(empty_engine) == "0002"
    with empty_engine.begin() as connection:
        connection.execute(text("UPDATE users SET username = 'short' WHERE id = 'user-0'"))
    upgrade(empty_engine)
    assert current_revision(empty_engine) == head_revision()


def colliding_sqlite(data_dir: Path) -> str:
    """A data folder whose SQLite database (at revision 0002) holds ``Admin`` and ``admin``."""
    data_dir.mkdir(parents=True)
    url = f"sqlite:///{data_dir / 'charter.db'}"
    engine = make_engine(url)
    try:
        upgrade(engine, "0002")
        add_users(engine, "Admin", "admin")
    finally:
        engine.dispose()
    return url


def test_commands_on_a_colliding_database_say_what_to_do(tmp_path: Path) -> None:
    url = colliding_sqlite(tmp_path / "data")
    result = CliRunner().invoke(charter, ["--database-url", url, "users", "list"])
    assert result.exit_code == 1
    assert "'Admin' (id user-0) and 'admin' (id user-1)" in result.stderr
    assert "UPDATE users SET username" in result.stderr
    assert "Traceback" not in result.output


def test_serve_on_a_colliding_database_exits_with_the_message(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    colliding_sqlite(data_dir)
    env = {key: value for key, value in os.environ.items() if not key.startswith("CHARTER_")}
    done = subprocess.run(
        [sys.executable, "-c", "from authserver.cli.main import main; main()",
         "serve", "--port", str(free_port()), "--data-dir", str(data_dir)],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "'Admin' (id user-0) and 'admin' (id user-1)" in done.stderr
    assert "Traceback" not in done.stderr
    assert "one-time password" not in done.stdout
