"""A fair turn at SQLite's single writer for every process on one database file (S58, S95).

:class:`~authserver.storage.db.Database` queues the threads of one process on a lock before
``BEGIN IMMEDIATE``, so SQLite's write lock passes from one of them to the next with gaps of
microseconds. A writer of another process (``charter tokens revoke`` while a worker is busy,
another worker, another ``Database`` object on the same file) only had SQLite's busy handler,
which polls in growing steps up to 100 ms: it got in only if a poll fell into one of those gaps,
and could starve for the whole busy timeout.

:class:`WriterGate` puts two ``flock(2)`` locks in front of SQLite's, on files beside the
database (``<db>-charter-writer.lock``, ``<db>-charter-intent.lock``, mode 0600):

* the *writer* lock, held exclusively from before ``BEGIN IMMEDIATE`` until after the commit
  or rollback: one gated transaction at a time over all processes;
* the *intent* lock, taken by a writer that has waited :data:`INTENT_AFTER_SECONDS` for the
  writer lock. While another gate holds it, no new transaction starts (it is probed with a
  shared, non-blocking lock released at once), so the waiter gets the writer lock when the
  transaction in progress ends. It is given back once the writer lock is held.

Waits poll every :data:`POLL_SECONDS` until the caller's deadline: a gate never blocks in the
kernel, so the wait stays bounded, and a process that dies loses its locks with its files.
``flock`` locks belong to an open file description: each gate opens its own (two ``Database``
objects of one process exclude each other), lazily in each process (a forked child opens new
ones and never unlocks what it inherited, which its parent still holds).

When the lock files cannot be opened (a read-only folder), the gate logs it and lets the
transaction through: SQLite's own lock and busy handler still keep writes apart.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import stat
import time
from pathlib import Path

logger = logging.getLogger("charter.storage")

#: Pause between two tries for a lock held by another gate, seconds.
POLL_SECONDS = 0.001
#: Wait for the writer lock after which a gate takes the intent lock, seconds: long enough
#: that a process between two short transactions keeps its turn, short beside a transaction.
INTENT_AFTER_SECONDS = 0.004
#: Suffixes of the lock files, appended to the database file's path.
WRITER_SUFFIX = "-charter-writer.lock"
INTENT_SUFFIX = "-charter-intent.lock"


def open_lock_file(path: Path) -> int:
    """A descriptor of ``path``, created readable by its owner only like the database file
    (``flock`` needs no write access, so an existing file opens read-only)."""
    # O_NONBLOCK: something other than a file planted under the name (a FIFO) must not hang
    # the open; it is refused below.
    flags = os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK
    fd = os.open(path, flags, 0o600)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file", str(path))
    return fd


def _try_lock(fd: int, operation: int) -> bool:
    """``flock(fd, operation | LOCK_NB)``: True when the lock was granted."""
    try:
        fcntl.flock(fd, operation | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _held_elsewhere(fd: int) -> bool:
    """True when another open file description holds ``fd``'s file exclusively."""
    if not _try_lock(fd, fcntl.LOCK_SH):
        return True
    fcntl.flock(fd, fcntl.LOCK_UN)
    return False


class _Files:
    """The lock files as opened by one process; closed when dropped."""

    def __init__(self, writer: int, intent: int) -> None:
        self.writer = writer
        self.intent = intent

    def close(self) -> None:
        """Close both descriptors, once (in a forked child this releases nothing: the parent's
        descriptors of the same open files keep their locks)."""
        fds, self.writer, self.intent = (self.writer, self.intent), -1, -1
        for fd in fds:
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass

    def __del__(self) -> None:
        self.close()


class WriterGate:
    """The cross-process writer lock of one ``Database`` on the SQLite file ``database``.

    Not thread-safe by itself: callers hold their own lock (``Database`` its writer ``RLock``)
    around :meth:`enter` and :meth:`leave`. Nested :meth:`enter` calls of the lock's holder
    count depth; only the outermost takes and releases the writer lock.
    """

    def __init__(self, database: Path) -> None:
        self.writer_path = Path(f"{database}{WRITER_SUFFIX}")
        self.intent_path = Path(f"{database}{INTENT_SUFFIX}")
        self._pid = os.getpid()
        self._files: _Files | None = None
        self._depth = 0
        self._unavailable_logged = False
        #: Set when the file system refuses flock: the gate then stays off in this process.
        self._off = False

    def enter(self, deadline: float) -> bool:
        """Take the writer lock (or one more level of it) before ``time.monotonic()`` reaches
        ``deadline``; False when the deadline passed first (nothing is then held)."""
        self._follow_fork()
        if self._depth > 0:
            self._depth += 1
            return True
        files = self._open()
        if files is not None:
            try:
                if not self._wait_for_writer(files, deadline):
                    return False
            except OSError as exc:  # flock refused (ENOLCK, a file system without locks)
                self._files, self._off = None, True
                files.close()
                self._log_unavailable(exc)
        self._depth = 1
        return True

    def leave(self) -> None:
        """Give back one level; the outermost releases the writer lock."""
        self._follow_fork()
        if self._depth == 0:
            return  # entered in the parent before a fork: that lock is the parent's
        self._depth -= 1
        if self._depth == 0 and self._files is not None:
            fcntl.flock(self._files.writer, fcntl.LOCK_UN)

    def close(self) -> None:
        """Close this process's lock files (the database is being disposed of); a later
        transaction opens them again."""
        if self._files is not None and os.getpid() == self._pid and self._depth == 0:
            files, self._files = self._files, None
            files.close()

    def _follow_fork(self) -> None:
        """In a child forked since the last call, forget the parent's descriptors and depth
        (closing them unlocks nothing: the parent's copies keep their locks)."""
        pid = os.getpid()
        if pid == self._pid:
            return
        if self._files is not None:
            self._files.close()
        self._pid, self._files, self._depth = pid, None, 0

    def _open(self) -> _Files | None:
        """This process's descriptors, opened on first use; None when the lock files cannot
        be opened (tried again at the next transaction)."""
        if self._files is not None or self._off:
            return self._files
        try:
            writer = open_lock_file(self.writer_path)
        except OSError as exc:
            self._log_unavailable(exc)
            return None
        try:
            intent = open_lock_file(self.intent_path)
        except OSError as exc:
            os.close(writer)
            self._log_unavailable(exc)
            return None
        self._files = _Files(writer, intent)
        return self._files

    def _log_unavailable(self, exc: OSError) -> None:
        if not self._unavailable_logged:
            self._unavailable_logged = True
            logger.warning(
                "SQLite writer gate off: cannot use %s (%s); other processes' writers may "
                "wait up to the busy timeout",
                self.writer_path,
                exc.strerror or type(exc).__name__,
            )

    def _wait_for_writer(self, files: _Files, deadline: float) -> bool:
        """Poll for the writer lock until ``deadline``, deferring to another gate's intent and
        announcing our own after :data:`INTENT_AFTER_SECONDS` of waiting."""
        intending = False
        blocked_since: float | None = None
        try:
            while True:
                now = time.monotonic()
                if not intending and _held_elsewhere(files.intent):
                    blocked_since = None  # another writer's turn comes first
                elif _try_lock(files.writer, fcntl.LOCK_EX):
                    return True
                elif blocked_since is None:
                    blocked_since = now
                elif not intending and now - blocked_since >= INTENT_AFTER_SECONDS:
                    intending = _try_lock(files.intent, fcntl.LOCK_EX)
                    if intending:
                        continue  # the writer may have been released meanwhile
                if now >= deadline:
                    return False
                time.sleep(POLL_SECONDS)
        finally:
            if intending:
                fcntl.flock(files.intent, fcntl.LOCK_UN)
