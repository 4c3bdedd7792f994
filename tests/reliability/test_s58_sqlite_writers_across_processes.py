"""S58 across processes: a writer of another process, or of another ``Database`` object on the
same SQLite file, gets its turn while the file's write lock is kept busy.

The case behind it: ``charter tokens revoke`` (S95) run while a worker's threads hold the write
lock back to back. Those threads queue on their process's lock and hand SQLite's write lock on
within microseconds; a writer outside that queue used to meet only SQLite's busy handler, whose
polls (growing to 100 ms apart) seldom fell into a gap, and failed with "database is locked"
after the 15 s busy timeout. Each transaction here must get in within :data:`BOUND` seconds, a
fifth of that timeout and many times the ~50 ms a fair turn takes.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from authserver.storage.db import Database
from tests.support.sqlite_writers import Saturation, count, increment, prepare

ROOT = Path(__file__).resolve().parents[2]
#: Threads of the saturating side, and how long each holds its transaction, seconds.
THREADS = 4
HOLD = 0.05
#: Transactions of the other writer, the pause before each (the saturating side takes the
#: lock back meanwhile) and the longest any of them may take, seconds.
TRANSACTIONS = 10
PAUSE = 0.1
BOUND = 3.0


@pytest.fixture
def sqlite_url(tmp_path: Path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'charter.db'}"
    database = Database.from_url(url)
    prepare(database, "saturator", "other")
    database.dispose()
    yield url


def timed_transactions(database: Database) -> list[float]:
    """Seconds each of :data:`TRANSACTIONS` write transactions took, begin to commit (up to
    the first that took longer than :data:`BOUND`)."""
    took: list[float] = []
    while len(took) < TRANSACTIONS and not any(seconds >= BOUND for seconds in took):
        time.sleep(PAUSE)
        started = time.monotonic()
        increment(database, "other")
        took.append(time.monotonic() - started)
    return took


def start_saturating_process(url: str) -> subprocess.Popen[str]:
    """``tests.support.sqlite_writers`` in a process of its own, once it saturates."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.sqlite_writers", url, str(THREADS), str(HOLD)],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], 60)
    line = process.stdout.readline() if ready else ""
    if line.strip() != "saturating":
        process.kill()
        process.wait()
        pytest.fail(f"the saturating process did not start: {line!r}")
    return process


def stop(process: subprocess.Popen[str]) -> str:
    """Close the saturating process's input (it stops) and return what it printed."""
    try:
        output, _ = process.communicate(timeout=60)  # closes its standard input first
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
    return output


def test_s58_a_writer_of_another_process_gets_in_while_one_saturates_the_file(
    sqlite_url: str,
) -> None:
    database = Database.from_url(sqlite_url)
    process = start_saturating_process(sqlite_url)
    try:
        took = timed_transactions(database)
    finally:
        output = stop(process)
    database.dispose()
    assert process.returncode == 0, output
    assert max(took) < BOUND, [round(seconds, 3) for seconds in took]
    assert len(took) == count_after(sqlite_url) == TRANSACTIONS


def test_s58_another_database_object_gets_in_while_one_saturates_the_file(
    sqlite_url: str,
) -> None:
    busy = Database.from_url(sqlite_url)
    other = Database.from_url(sqlite_url)
    saturation = Saturation(busy, THREADS, HOLD)
    saturation.start()
    try:
        took = timed_transactions(other)
    finally:
        saturation.stop()
    assert not saturation.errors
    assert max(took) < BOUND, [round(seconds, 3) for seconds in took]
    assert len(took) == count(other, "other") == TRANSACTIONS
    busy.dispose()
    other.dispose()


def count_after(url: str) -> int:
    database = Database.from_url(url)
    try:
        return count(database, "other")
    finally:
        database.dispose()
