"""Engine and transactions: SQLite (WAL, busy timeout, immediate writes) or PostgreSQL.

Endpoint code owns the transaction (:meth:`Database.transaction`); query helpers never commit.

SQLite's single writer (S58): the threads of one process queue on the ``Database``'s lock, and
its holder then takes its turn among the other processes and ``Database`` objects on the file
at a :class:`~authserver.storage.writer_gate.WriterGate` before ``BEGIN IMMEDIATE``; both waits
are bounded by the busy timeout.

Recovery from storage faults (S97): SQLite silently opens a file it cannot write read-only
(``sqlite3_open_v2``: "reading only if the file is write protected by the operating system",
``mode=rw`` included, which only stops it creating a missing file), and such a connection would
stay in the pool, failing every write, long after the file is writable again. So:

* a connection that reports a read-only database or an I/O error is dropped from the pool like
  a lost PostgreSQL connection;
* a connection opened while the file was not writable (``access(2)``, which sees modes, the
  immutable attribute and read-only mounts) still serves reads, and is replaced at its first
  checkout once the file is writable again — a connection that served only reads during the
  fault would otherwise fail the first write after it, however much later that comes.

PostgreSQL's counterpart is a database made read-only (``default_transaction_read_only``, set
for maintenance or a full disk, or a standby answering in place of the primary): the setting
applies when a session starts, so a session opened in the window stays read-only after it. A
connection whose statement fails with SQLSTATE 25006 ``read_only_sql_transaction`` is dropped
from the pool like a lost one; its replacement sees the database as it is now.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, ExceptionContext, make_url
from sqlalchemy.exc import DisconnectionError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry

from authserver.storage.writer_gate import WriterGate

if TYPE_CHECKING:  # imported where used: a PostgreSQL worker never loads the sqlite3 module
    import sqlite3

SQLITE_BUSY_TIMEOUT_MS = 15_000
#: Pause between two tries to switch a new database to WAL while another connection holds it.
_WAL_RETRY_PAUSE_SECONDS = 0.02
#: SQLite errors after which a connection is not reused (it may have been opened read-only, or
#: its file handle broken): the pool replaces it, as for a lost connection.
_SQLITE_BROKEN_CONNECTION = (
    "readonly database",
    "disk i/o error",
    "unable to open database file",
)
#: SQLSTATE of a write refused in a read-only session (PostgreSQL "Errcodes", class 25).
_PG_READ_ONLY_SQL_TRANSACTION = "25006"
#: Key of a pool entry's ``info``: its connection was opened while the file was not writable.
_OPENED_READ_ONLY = "charter_opened_read_only"


def _use_wal(cursor: sqlite3.Cursor) -> None:
    """Put the database in WAL mode (persistent, so usually already done).

    Switching a new database's journal mode needs an exclusive lock, and SQLite answers
    "database is locked" at once (without its busy handler) while another connection — a
    second worker starting at the same moment — holds the file; retry for the busy timeout.
    """
    import sqlite3

    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            mode = cursor.execute("PRAGMA journal_mode").fetchone()
            if mode is not None and str(mode[0]).lower() == "wal":
                return
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(_WAL_RETRY_PAUSE_SECONDS)


def _configure_sqlite(engine: Engine, path: Path | None) -> None:
    """WAL, a busy timeout, foreign keys, and ``BEGIN IMMEDIATE`` for every transaction (S58);
    connections of the file ``path`` opened read-only are replaced once it is writable (S97)."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, record: ConnectionPoolEntry) -> None:
        record.info[_OPENED_READ_ONLY] = path is not None and not os.access(path, os.W_OK)
        # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's own is deferred).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        _use_wal(cursor)
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    @event.listens_for(engine, "handle_error")
    def _on_error(context: ExceptionContext) -> None:
        message = str(context.original_exception).lower()
        if any(marker in message for marker in _SQLITE_BROKEN_CONNECTION):
            context.is_disconnect = True

    @event.listens_for(engine, "checkout")
    def _on_checkout(
        _dbapi_connection: sqlite3.Connection, record: ConnectionPoolEntry, _proxy: Any
    ) -> None:
        if record.info.get(_OPENED_READ_ONLY) and path is not None and os.access(path, os.W_OK):
            # The pool closes this connection and opens a new one in its place.
            raise DisconnectionError("opened read-only; the database file is writable again")


def _configure_postgresql(engine: Engine) -> None:
    """Sessions that found the database read-only are not reused (S97)."""

    @event.listens_for(engine, "handle_error")
    def _on_error(context: ExceptionContext) -> None:
        original = context.original_exception
        code = getattr(original, "sqlstate", None) or getattr(original, "pgcode", None)
        if code == _PG_READ_ONLY_SQL_TRANSACTION:
            context.is_disconnect = True


def _read_write_url(url: URL, path: Path) -> URL:
    """``url`` opening ``path`` read-write or failing (never SQLite's silent read-only
    fallback, S97): the ``file:`` URI form with ``mode=rw``."""
    return url.set(
        database="file:" + quote(str(path.resolve())), query={"mode": "rw", "uri": "true"}
    )


def sqlite_file(url: URL) -> Path | None:
    """The file a SQLite ``url`` opens: a plain path, or the read-write ``file:`` form
    :func:`make_engine` gives it; None for an in-memory database or another ``file:`` URI."""
    database = url.database or ""
    if not database or database == ":memory:":
        return None
    if not database.startswith("file:"):
        return Path(database).expanduser().resolve()
    location = database.removeprefix("file:")
    if dict(url.query) == {"mode": "rw", "uri": "true"} and location.startswith("/"):
        return Path(unquote(location))
    return None


def _create_private_file(path: Path) -> None:
    """Create the database file readable by its owner only (it holds password hashes and the
    encrypted keys); SQLite gives its -wal and -shm files the same mode. Existing files are
    left as they are."""
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=0o700)
    if not path.exists():
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            pass


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    """Create the engine for ``url``; creates the SQLite file's folder when needed."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        target: str | URL = url
        path: Path | None = None
        if database and database != ":memory:" and not database.startswith("file:"):
            path = Path(database).expanduser().resolve()
            _create_private_file(path)
            target = _read_write_url(parsed, path)
        engine = create_engine(
            target,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            pool_size=pool_size,
            max_overflow=20,
            pool_timeout=30,
        )
        _configure_sqlite(engine, path)
        return engine
    engine = create_engine(
        url,
        pool_pre_ping=True,  # S60: a dead connection is replaced before it fails a request
        pool_size=pool_size,
        max_overflow=20,
        pool_recycle=1800,
    )
    if parsed.get_backend_name() == "postgresql":
        _configure_postgresql(engine)
    return engine


def is_sqlite(engine: Engine) -> bool:
    """True when ``engine`` talks to SQLite."""
    return engine.dialect.name == "sqlite"


class Database:
    """Owns the engine and hands out sessions; one per application."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        # SQLite has one writer and every transaction here begins IMMEDIATE: the threads of
        # this process queue on a lock instead of in SQLite's busy handler, which sleeps in
        # growing steps (up to 100 ms) and lets an unlucky thread starve (8 concurrent grants
        # reached a p99 of 2-3 s). The lock's holder then takes its turn among the other
        # processes and Database objects on the same file at a WriterGate (flock).
        self._writer = threading.RLock() if is_sqlite(engine) else None
        path = sqlite_file(engine.url) if self._writer is not None else None
        self._gate = WriterGate(path) if path is not None else None
        # Threads waiting for ``_writer`` and the gate: a background purge lets them go
        # first (S64).
        self._queued = 0
        self._queue_guard = threading.Lock()

    def send_audit_to(self, sink: Any) -> None:
        """Give every session's committed audit events to ``sink`` as well
        (:class:`authserver.storage.audit.JsonLinesSink`)."""
        self._sessions.configure(info={"charter_audit_sink": sink})

    @classmethod
    def from_url(cls, url: str) -> Database:
        """Build from a SQLAlchemy URL."""
        return cls(make_engine(url))

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on error."""
        if self._writer is None:
            with self._sessions() as session, session.begin():
                yield session
            return
        self._take_turn(self._writer)
        try:
            with self._sessions() as session, session.begin():
                yield session
        finally:
            self._end_turn(self._writer)

    def _take_turn(self, writer: threading.RLock) -> None:
        """Take this process's writer lock, then the gate (one transaction at a time over all
        processes on the file); both waits together are bounded like the busy handler they
        stand in for, and end in SQLite's own "database is locked" error."""
        deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
        with self._queue_guard:
            self._queued += 1
        try:
            acquired = writer.acquire(timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)
            if acquired and self._gate is not None:
                try:
                    acquired = self._gate.enter(deadline)
                except BaseException:
                    writer.release()
                    raise
                if not acquired:
                    writer.release()
        finally:
            with self._queue_guard:
                self._queued -= 1
        if not acquired:
            import sqlite3

            raise OperationalError(
                "BEGIN IMMEDIATE", None, sqlite3.OperationalError("database is locked")
            )

    def _end_turn(self, writer: threading.RLock) -> None:
        """Give back what :meth:`_take_turn` took, the gate first."""
        try:
            if self._gate is not None:
                self._gate.leave()
        finally:
            writer.release()

    def writers_waiting(self) -> int:
        """How many threads of this process wait to begin a transaction through this object
        (SQLite's single writer; always 0 on PostgreSQL)."""
        return self._queued

    def dispose(self) -> None:
        """Close every pooled connection (and the writer gate's lock files)."""
        self.engine.dispose()
        if self._gate is not None:
            self._gate.close()
