"""Writers that keep a SQLite file's write lock busy, for the S58 cases across processes.

:func:`saturate` runs threads that each hold a write transaction for ``hold`` seconds, back to
back, through :meth:`Database.transaction` (as a busy worker's token requests do). Run as a
module it does so in a process of its own::

    python -m tests.support.sqlite_writers <url> <threads> <hold-seconds>

It prints ``saturating`` once every thread has committed once, and stops when its standard
input closes, printing how many transactions it committed.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field

from sqlalchemy import text

from authserver.storage.db import Database

#: Table of the counters both sides increment (one row per writer name).
SCHEMA = "CREATE TABLE counter (name TEXT PRIMARY KEY, n INTEGER NOT NULL)"


def prepare(database: Database, *names: str) -> None:
    """Create the counter table with a row per name."""
    with database.transaction() as session:
        session.execute(text(SCHEMA))
        for name in names:
            session.execute(text("INSERT INTO counter VALUES (:name, 0)"), {"name": name})


def increment(database: Database, name: str, hold: float = 0.0) -> None:
    """One write transaction on ``name``'s counter, held ``hold`` seconds before its commit."""
    with database.transaction() as session:
        session.execute(text("UPDATE counter SET n = n + 1 WHERE name = :name"), {"name": name})
        if hold:
            time.sleep(hold)


def count(database: Database, name: str) -> int:
    """``name``'s committed transactions."""
    with database.transaction() as session:
        value = session.execute(
            text("SELECT n FROM counter WHERE name = :name"), {"name": name}
        ).scalar_one()
    return int(value)


@dataclass
class Saturation:
    """Threads holding write transactions back to back until :meth:`stop`."""

    database: Database
    threads: int
    hold: float
    name: str = "saturator"
    committed: int = 0
    errors: list[BaseException] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _started: threading.Barrier | None = None
    _workers: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        """Start the threads; returns once each has committed one transaction."""
        self._started = threading.Barrier(self.threads + 1)
        for index in range(self.threads):
            worker = threading.Thread(target=self._run, name=f"{self.name}-{index}", daemon=True)
            worker.start()
            self._workers.append(worker)
        self._started.wait(30)

    def stop(self) -> None:
        """Stop the threads and wait for them."""
        self._stop.set()
        for worker in self._workers:
            worker.join(30)

    def _run(self) -> None:
        first = True
        while not self._stop.is_set():
            try:
                increment(self.database, self.name, self.hold)
            except Exception as exc:  # reported by the test, which fails on it
                self.errors.append(exc)
                if first and self._started is not None:
                    self._started.abort()  # start() raises instead of waiting
                return
            with self._lock:
                self.committed += 1
            if first and self._started is not None:
                first = False
                self._started.wait(30)


def main(argv: list[str]) -> int:
    url, threads, hold = argv[0], int(argv[1]), float(argv[2])
    database = Database.from_url(url)
    saturation = Saturation(database, threads, hold)
    saturation.start()
    print("saturating", flush=True)
    sys.stdin.read()  # until the test closes our standard input
    saturation.stop()
    print(f"committed {saturation.committed} errors {len(saturation.errors)}", flush=True)
    database.dispose()
    return 1 if saturation.errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
