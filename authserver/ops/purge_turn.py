"""One purge at a time on a SQLite file (S64: purging alongside traffic).

``charter serve`` purges in the background every ``maintenance_interval_seconds`` and an
operator may run ``charter tokens purge`` meanwhile. Two purges of one file share nothing but
SQLite's single writer: each adds its own transactions, pauses and checkpoints, and the serving
process's requests meet twice as many of them, for no gain (they delete the same rows).
Measured with 1,000,000 expired rows: when the server's background purge started during the
command's, the token endpoint's p99 over ten seconds went from about 70 to 150 to 270 ms.

So a purge takes ``flock(2)`` on ``<db>-charter-purge.lock`` (mode 0600, beside the database
like SQLite's own ``-wal`` and ``-shm`` files) for its whole run. The background loop skips its
turn when another purge holds it; the command waits for it. PostgreSQL needs none of this:
purges there lock only the rows they delete.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote

from sqlalchemy import Engine

from authserver.storage.db import is_sqlite
from authserver.storage.writer_gate import open_lock_file

logger = logging.getLogger("charter.maintenance")

#: Suffix of the lock file, appended to the database file's path.
PURGE_LOCK_SUFFIX = "-charter-purge.lock"
#: Pause between two tries of a waiting purge, seconds.
WAIT_POLL = 0.05


def purge_lock_path(engine: Engine) -> Path | None:
    """The lock file of ``engine``'s SQLite file; None for an in-memory database or another
    backend."""
    if not is_sqlite(engine):
        return None
    database = engine.url.database or ""
    if database.startswith("file:"):
        database = unquote(database.removeprefix("file:"))
    if not database or database == ":memory:":
        return None
    return Path(f"{database}{PURGE_LOCK_SUFFIX}")


@contextmanager
def purge_turn(
    engine: Engine, *, wait: bool, sleep: Callable[[float], None] = time.sleep
) -> Iterator[bool]:
    """Hold the purge lock of ``engine``'s file for the block: yields True when this purge may
    run, False when another holds the lock and ``wait`` is false. Without a lock file (another
    backend, a folder it cannot be made in) every purge runs."""
    path = purge_lock_path(engine)
    if path is None:
        yield True
        return
    try:
        fd = open_lock_file(path)
    except OSError as exc:
        logger.warning("purge lock %s unavailable (%s); purging anyway", path, exc)
        yield True
        return
    try:
        while not _try_lock(fd):
            if not wait:
                yield False
                return
            sleep(WAIT_POLL)
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True
