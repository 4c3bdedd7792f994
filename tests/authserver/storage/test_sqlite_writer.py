"""SQLite's single writer (authserver.storage.db): the threads of one process queue on the
process's writer lock instead of in SQLite's busy handler, and that wait stays bounded."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import OperationalError

from authserver.storage import db as db_module
from authserver.storage.db import Database


def sqlite_database(tmp_path: Path) -> Database:
    database = Database.from_url(f"sqlite:///{tmp_path / 'charter.db'}")
    with database.transaction() as session:
        session.execute(text("CREATE TABLE counter (n INTEGER NOT NULL)"))
        session.execute(text("INSERT INTO counter VALUES (0)"))
    return database


def test_threads_of_one_process_never_meet_in_the_busy_handler(tmp_path: Path) -> None:
    """While one thread's transaction is open, another's waits on the process's lock: it sends
    no BEGIN IMMEDIATE (which would sleep in SQLite's busy handler) until the first commits."""
    database = sqlite_database(tmp_path)
    begun: list[str] = []
    holding = threading.Event()
    release = threading.Event()

    @event.listens_for(database.engine, "before_cursor_execute")
    def _record(*args: Any) -> None:
        if str(args[2]).startswith("BEGIN"):  # (conn, cursor, statement, …): sent, not yet run
            begun.append(threading.current_thread().name)

    def transaction(name: str, *, hold: bool) -> None:
        with database.transaction() as session:
            session.execute(text("UPDATE counter SET n = n + 1"))
            if hold:
                holding.set()
                release.wait(10)

    first = threading.Thread(target=transaction, args=("first",), kwargs={"hold": True})
    first.name = "first"
    first.start()
    assert holding.wait(5)
    second = threading.Thread(target=transaction, args=("second",), kwargs={"hold": False})
    second.name = "second"
    second.start()
    second.join(0.5)
    assert second.is_alive()
    assert begun == ["first"]  # the second has not reached SQLite
    release.set()
    first.join(5)
    second.join(5)
    assert begun == ["first", "second"]
    with database.transaction() as session:
        assert session.execute(text("SELECT n FROM counter")).scalar_one() == 2
    database.dispose()


def test_the_wait_for_the_writer_is_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = sqlite_database(tmp_path)
    monkeypatch.setattr(db_module, "SQLITE_BUSY_TIMEOUT_MS", 200)
    holding = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with database.transaction():
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(5)
        with pytest.raises(OperationalError, match="database is locked"):
            with database.transaction():
                pass
    finally:
        release.set()
        holder.join()
    with database.transaction() as session:  # free again once the holder committed
        assert session.execute(text("SELECT n FROM counter")).scalar_one() == 0
    database.dispose()


def test_postgresql_has_no_process_writer_lock() -> None:
    database = Database.from_url("postgresql+psycopg://nobody@127.0.0.1:1/none")
    assert database._writer is None
    database.dispose()
