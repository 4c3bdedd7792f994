"""The cross-process writer gate of a SQLite file (authserver.storage.writer_gate) and its use
by :meth:`Database.transaction`: exclusion between gates, depth, the intent lock, bounded
waits ending in "database is locked", release on errors, fork safety, lock files' mode."""

from __future__ import annotations

import fcntl
import logging
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.exc import OperationalError

from authserver.storage import db as db_module
from authserver.storage.db import Database, make_engine, sqlite_file
from authserver.storage.writer_gate import INTENT_SUFFIX, WRITER_SUFFIX, WriterGate


def soon(seconds: float = 0.05) -> float:
    """A deadline ``seconds`` from now."""
    return time.monotonic() + seconds


def is_locked(path: Path) -> bool:
    """True when some open file description holds ``path`` exclusively."""
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = soon(timeout)
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.001)
    return False


def lock_is_free(database: Database) -> bool:
    """True when another thread can take ``database``'s process writer lock."""
    writer = database._writer
    assert writer is not None
    acquired: list[bool] = []

    def probe() -> None:
        acquired.append(writer.acquire(timeout=1))
        if acquired[0]:
            writer.release()

    thread = threading.Thread(target=probe)
    thread.start()
    thread.join(5)
    return acquired == [True]


@pytest.fixture
def database_path(tmp_path: Path) -> Path:
    return tmp_path / "charter.db"


@pytest.fixture
def databases(database_path: Path) -> Iterator[tuple[Database, Database]]:
    """Two ``Database`` objects on one SQLite file, with a counter table."""
    url = f"sqlite:///{database_path}"
    first, second = Database.from_url(url), Database.from_url(url)
    with first.transaction() as session:
        session.execute(text("CREATE TABLE counter (n INTEGER NOT NULL)"))
        session.execute(text("INSERT INTO counter VALUES (0)"))
    yield first, second
    first.dispose()
    second.dispose()


def test_two_gates_on_one_file_exclude_each_other(database_path: Path) -> None:
    first, second = WriterGate(database_path), WriterGate(database_path)
    assert first.enter(soon())
    assert not second.enter(soon())
    first.leave()
    assert second.enter(soon())
    second.leave()


def test_only_the_outermost_level_takes_and_releases_the_writer_lock(database_path: Path) -> None:
    gate, other = WriterGate(database_path), WriterGate(database_path)
    assert gate.enter(soon())
    assert gate.enter(soon())  # nested: no second flock, no wait on itself
    gate.leave()
    assert is_locked(gate.writer_path)
    assert not other.enter(soon())
    gate.leave()
    assert not is_locked(gate.writer_path)
    assert other.enter(soon())
    other.leave()


def test_a_waiting_gate_announces_its_intent_and_goes_before_a_new_transaction(
    database_path: Path,
) -> None:
    """Once a gate has waited a few ms it holds the intent lock; the holder's next
    transaction then waits for it instead of taking the writer lock again at once."""
    holder, waiter = WriterGate(database_path), WriterGate(database_path)
    order: list[str] = []
    assert holder.enter(soon())

    def wait_for_turn() -> None:
        assert waiter.enter(soon(5))
        order.append("waiter")
        time.sleep(0.05)
        waiter.leave()

    thread = threading.Thread(target=wait_for_turn)
    thread.start()
    try:
        assert wait_until(lambda: is_locked(waiter.intent_path))
        holder.leave()
        assert holder.enter(soon(5))
        order.append("holder again")
        holder.leave()
    finally:
        thread.join(5)
    assert order == ["waiter", "holder again"]
    assert not is_locked(waiter.intent_path)  # given back once the writer lock was its own


def test_a_gate_that_times_out_holds_nothing(database_path: Path) -> None:
    holder, waiter = WriterGate(database_path), WriterGate(database_path)
    assert holder.enter(soon())
    assert not waiter.enter(soon(0.05))  # long enough to have taken the intent lock
    assert not is_locked(waiter.intent_path)
    holder.leave()
    assert not is_locked(holder.writer_path)


def test_lock_files_are_beside_the_database_and_private(database_path: Path) -> None:
    gate = WriterGate(database_path)
    assert gate.enter(soon())
    gate.leave()
    for suffix in (WRITER_SUFFIX, INTENT_SUFFIX):
        path = Path(f"{database_path}{suffix}")
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_forked_child_opens_its_own_lock_files(database_path: Path) -> None:
    """The child's gate excludes the parent's (an inherited open file description would
    share the parent's lock), and the child's exit leaves the parent's lock alone."""
    gate = WriterGate(database_path)
    assert gate.enter(soon())  # opened (and held) in the parent before the fork
    to_child_r, to_child_w = os.pipe()
    to_parent_r, to_parent_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report what it sees, then exit without running pytest's code
        status = 1
        try:
            os.close(to_child_w)
            os.close(to_parent_r)
            gate.leave()  # entered by the parent: releases nothing here
            blocked = not gate.enter(soon(0.05))
            os.write(to_parent_w, b"blocked" if blocked else b"entered")
            os.read(to_child_r, 1)  # the parent released its lock
            os.write(to_parent_w, b"in" if gate.enter(soon(5)) else b"out")
            os.read(to_child_r, 1)
            gate.leave()
            status = 0
        finally:
            os._exit(status)
    os.close(to_child_r)
    os.close(to_parent_w)
    try:
        assert os.read(to_parent_r, 16) == b"blocked"
        assert is_locked(gate.writer_path)  # the child's leave() did not unlock the parent
        gate.leave()
        os.write(to_child_w, b"x")
        assert os.read(to_parent_r, 16) == b"in"
        assert not gate.enter(soon())  # the child holds it now
        os.write(to_child_w, b"x")
    finally:
        os.close(to_child_w)
        _, status = os.waitpid(pid, 0)
        os.close(to_parent_r)
    assert os.waitstatus_to_exitcode(status) == 0
    assert gate.enter(soon())
    gate.leave()


def test_database_objects_on_one_file_take_turns_at_the_gate(
    databases: tuple[Database, Database],
) -> None:
    first, second = databases
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with first.transaction() as session:
            session.execute(text("UPDATE counter SET n = n + 1"))
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(5)
        assert second._gate is not None
        assert not second._gate.enter(soon())  # the other object's transaction holds it
    finally:
        release.set()
        holder.join(5)
    with second.transaction() as session:
        assert session.execute(text("SELECT n FROM counter")).scalar_one() == 1


def test_a_nested_transaction_keeps_the_gate_until_the_outer_one_ends(
    databases: tuple[Database, Database], database_path: Path
) -> None:
    first, _ = databases
    other = WriterGate(database_path)
    with first.transaction():  # no statement yet: SQLite's lock is free for the inner one
        with first.transaction() as session:
            session.execute(text("UPDATE counter SET n = n + 1"))
        assert not other.enter(soon())  # the inner end did not release the outer's turn
    assert other.enter(soon())
    other.leave()


def test_a_transaction_waiting_for_another_object_times_out_as_sqlite_does(
    databases: tuple[Database, Database], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gate's wait shares the busy timeout and ends in the same OperationalError; the
    waiter then holds neither its process's lock nor the intent lock."""
    first, second = databases
    monkeypatch.setattr(db_module, "SQLITE_BUSY_TIMEOUT_MS", 200)
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with first.transaction():
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(5)
        started = time.monotonic()
        with pytest.raises(OperationalError, match="database is locked"):
            with second.transaction():
                pass
        assert time.monotonic() - started >= 0.2
        assert second.writers_waiting() == 0
        assert second._gate is not None
        assert not is_locked(second._gate.intent_path)
        assert lock_is_free(second)
    finally:
        release.set()
        holder.join(5)


def test_the_gate_is_released_when_the_transaction_fails(
    databases: tuple[Database, Database],
) -> None:
    first, second = databases
    with pytest.raises(ValueError, match="boom"):
        with first.transaction() as session:
            session.execute(text("UPDATE counter SET n = n + 1"))
            raise ValueError("boom")
    assert first._gate is not None
    assert not is_locked(first._gate.writer_path)
    with second.transaction() as session:  # rolled back, and the other object gets in
        assert session.execute(text("SELECT n FROM counter")).scalar_one() == 0


def test_a_failing_gate_gives_back_the_process_lock(
    databases: tuple[Database, Database], monkeypatch: pytest.MonkeyPatch
) -> None:
    first, _ = databases
    assert first._gate is not None

    def broken(_deadline: float) -> bool:
        raise OSError("flock failed")

    monkeypatch.setattr(first._gate, "enter", broken)
    with pytest.raises(OSError, match="flock failed"):
        with first.transaction():
            pass
    assert first.writers_waiting() == 0
    assert lock_is_free(first)


def test_without_lock_files_transactions_still_run(
    database_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    Path(f"{database_path}{WRITER_SUFFIX}").mkdir(parents=True)  # cannot be opened as a file
    database = Database.from_url(f"sqlite:///{database_path}")
    caplog.set_level(logging.WARNING, logger="charter.storage")
    for _ in range(2):
        with database.transaction() as session:
            session.execute(text("SELECT 1"))
    database.dispose()
    assert caplog.text.count("writer gate off") == 1


def test_a_fifo_planted_as_a_lock_file_neither_hangs_nor_stops_writes(
    database_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    os.mkfifo(f"{database_path}{WRITER_SUFFIX}", 0o600)  # an open would block without a writer
    database = Database.from_url(f"sqlite:///{database_path}")
    caplog.set_level(logging.WARNING, logger="charter.storage")
    with database.transaction() as session:
        session.execute(text("SELECT 1"))
    database.dispose()
    assert "not a regular file" in caplog.text


def test_a_file_system_refusing_flock_turns_the_gate_off_once(
    database_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from authserver.storage import writer_gate

    calls: list[int] = []

    def refuse(fd: int, operation: int) -> None:
        calls.append(operation)
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(writer_gate.fcntl, "flock", refuse)
    database = Database.from_url(f"sqlite:///{database_path}")
    caplog.set_level(logging.WARNING, logger="charter.storage")
    for _ in range(3):
        with database.transaction() as session:
            session.execute(text("SELECT 1"))
    database.dispose()
    assert caplog.text.count("writer gate off") == 1
    assert len(calls) == 1  # off after the first refusal, not tried on every transaction


def test_dispose_closes_the_lock_files(database_path: Path) -> None:
    database = Database.from_url(f"sqlite:///{database_path}")
    with database.transaction() as session:
        session.execute(text("SELECT 1"))
    gate = database._gate
    assert gate is not None and gate._files is not None
    fds = (gate._files.writer, gate._files.intent)
    database.dispose()
    assert gate._files is None
    for fd in fds:
        with pytest.raises(OSError):
            os.fstat(fd)


def test_only_sqlite_files_have_a_gate(tmp_path: Path) -> None:
    path = tmp_path / "charter.db"
    engine = make_engine(f"sqlite:///{path}")
    assert str(engine.url.database).startswith("file:")  # make_engine's read-write form
    assert sqlite_file(engine.url) == path.resolve()
    assert Database(engine)._gate is not None
    engine.dispose()
    assert sqlite_file(make_url(f"sqlite:///{path}")) == path.resolve()
    for url in ("sqlite://", "sqlite:///:memory:", "sqlite:///file:c?mode=memory&uri=true"):
        assert sqlite_file(make_url(url)) is None, url
    memory = Database(create_engine("sqlite://"))
    assert memory._gate is None
    memory.dispose()
