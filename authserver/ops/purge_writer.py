"""The purge's own connection to SQLite: it waits for the write lock by polling every
millisecond, not through SQLite's busy handler (S64: purging alongside traffic).

SQLite's busy handler sleeps in growing steps (1, 2, 5, 10, … up to 100 ms). The serving
process's writers begin one after the other, so a purge whose ``BEGIN IMMEDIATE`` found the lock
held mostly slept through the short free moments between them: with the token endpoint busy,
200,000 rows took five minutes. The purge's connection has a busy timeout of
:data:`LOCK_POLL_MS`; each time its ``BEGIN IMMEDIATE`` fails with "database is locked" it
gives up the transaction (and this process's writer lock, so waiting writers go first), sleeps
as long and tries again, for at most the usual busy timeout. PostgreSQL needs none of this: the
purge uses the server's database.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from sqlalchemy import event
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.pool import ConnectionPoolEntry

from authserver.context import AuthServer
from authserver.storage.db import SQLITE_BUSY_TIMEOUT_MS, Database, is_sqlite, make_engine

#: Busy timeout of the purge's connection, and its pause between two tries, milliseconds.
LOCK_POLL_MS = 1
T = TypeVar("T")


class _Busy(Exception):
    """``BEGIN IMMEDIATE`` found the write lock held."""


@contextmanager
def purge_database(server: AuthServer) -> Iterator[Database]:
    """The database the purge writes through: on SQLite its own one-connection engine with a
    busy timeout of :data:`LOCK_POLL_MS`, disposed afterwards; else the server's."""
    if not is_sqlite(server.database.engine):
        yield server.database
        return
    url = server.database.engine.url.render_as_string(hide_password=False)
    engine = make_engine(url, pool_size=1)

    @event.listens_for(engine, "connect")
    def _short_busy_timeout(dbapi_connection: sqlite3.Connection, _: ConnectionPoolEntry) -> None:
        # Runs after make_engine's own "connect" listener, which set the usual timeout.
        dbapi_connection.execute(f"PRAGMA busy_timeout = {LOCK_POLL_MS}")

    database = Database(engine)
    try:
        yield database
    finally:
        database.dispose()


def write_when_free(
    database: Database,
    work: Callable[[Session], T],
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``work(session)`` in a transaction begun once the write lock is free, polled every
    :data:`LOCK_POLL_MS` (for at most SQLite's usual busy timeout; then the error is raised)."""
    deadline = clock() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            with database.transaction() as session:
                try:
                    session.connection()  # BEGIN IMMEDIATE on SQLite
                except OperationalError as exc:
                    if "database is locked" not in str(exc).lower() or clock() >= deadline:
                        raise
                    raise _Busy from exc
                return work(session)
        except _Busy:
            sleep(LOCK_POLL_MS / 1000)
