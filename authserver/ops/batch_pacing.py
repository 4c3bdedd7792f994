"""How big the purge's transactions are and how far apart (S64: purging alongside traffic).

SQLite has one writer. The token endpoint's writers of the serving process queue on its writer
lock (:class:`authserver.storage.db.Database`), and a purge run by ``charter tokens purge`` in
another process meets them in SQLite's busy handler, which polls with growing sleeps (1, 2, 5,
10, … up to 100 ms). A purge deleting 1,000 rows per transaction (about 90 ms with the seven
indexes of ``access_tokens``) back to back left a waiting writer almost no free moment at which
its poll lands: p99 of the token endpoint rose six-fold while 1,000,000 rows were purged.

So every transaction is sized to a time budget (:data:`TRANSACTION_BUDGET`; the row count adapts
to how long the last transaction took, never above the caller's ``batch_size``), and between
two transactions the purge pauses at least :data:`MIN_PAUSE` and as long as the transaction
took, then waits while writers of its own process are queued (up to
:data:`MAX_YIELD`), so that waiting grant writers go first. PostgreSQL has no single writer,
but the pause bounds the purge's share of the CPU the server needs as well (its budget is
:data:`POSTGRESQL_TRANSACTION_BUDGET`, its pauses :data:`POSTGRESQL_PAUSE_RATIO`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

#: Seconds one purge transaction should take (holding the write lock): a writer that found it
#: held gets in at its busy handler's first or second retry (1 ms, then 2 ms later).
TRANSACTION_BUDGET = 0.002
#: The same on PostgreSQL, which has no single writer: rows deleted there lock only themselves,
#: and each commit waits for its WAL flush, so transactions are longer (the pause after each
#: still bounds the purge's share of the machine).
POSTGRESQL_TRANSACTION_BUDGET = 0.05
#: Rows of the first transaction of a table (then adapted to the budget).
FIRST_BATCH = 50
#: Fewest rows per transaction (about a millisecond on an idle machine): progress even when a
#: busy machine makes every transaction look slow.
MIN_BATCH = 20
#: Shortest pause between two transactions, seconds: longer than the busy handler's first
#: retries (1 and 3 ms after a writer found the lock held), so their poll finds it free.
MIN_PAUSE = 0.005
#: The pause is also at least this many times the transaction's duration: a transaction that
#: took long (it waited for the lock, or the machine is busy) is followed by a longer pause.
PAUSE_RATIO = 1.0
#: The same on PostgreSQL, where the pause only leaves the server its share of the machine.
POSTGRESQL_PAUSE_RATIO = 0.5
#: Longest wait, after the pause, for writers of this process queued on the writer lock.
MAX_YIELD = 0.1
#: Poll interval of that wait.
YIELD_POLL = 0.001


#: ``transaction(rows, began)`` of :meth:`BatchPacer.run`.
Transaction = Callable[[int, Callable[[], None]], int]


@dataclass
class BatchPacer:
    """Rows per transaction and the pauses between transactions of one purge."""

    #: Most rows per transaction (the ``--batch-size`` of ``charter tokens purge``).
    limit: int
    #: Queued writers of this process (``Database.writers_waiting``); none by default.
    writers_waiting: Callable[[], int] = lambda: 0
    budget: float = TRANSACTION_BUDGET
    pause_ratio: float = PAUSE_RATIO
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    size: int = field(init=False)
    #: Rows deleted by each transaction so far (read by tests and logs).
    transactions: list[int] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise ValueError("batch_size must be positive")
        self.size = min(self.limit, FIRST_BATCH)

    def run(self, transaction: Transaction, after: Callable[[int], None] | None = None) -> int:
        """Run ``transaction(rows, began)`` until it deletes fewer than asked; total deleted.

        The transaction deletes at most ``rows`` rows, returns how many, and calls ``began()``
        once it holds the write lock: only the time from there to its commit counts (a purge
        that waited for the server's writers is not slowed further for it). ``after(rows)`` runs
        after each transaction that deleted rows, outside it, as part of the pause."""
        removed = 0
        while True:
            wanted = self.size
            marks = [self.clock()]
            done = transaction(wanted, partial(self._mark, marks))
            elapsed = self.clock() - marks[-1]
            self.transactions.append(done)
            removed += done
            paused = self.clock()
            if done and after is not None:
                after(done)  # outside the transaction: part of the pause
            if done < wanted:
                return removed
            self._adapt(done, elapsed)
            self._pause(elapsed, self.clock() - paused)

    def _mark(self, marks: list[float]) -> None:
        marks.append(self.clock())

    def _adapt(self, rows: int, elapsed: float) -> None:
        """Aim the next transaction at the budget: grow at most twofold, shrink to fit."""
        if elapsed <= 0:
            target = rows * 2
        else:
            target = int(rows * self.budget / elapsed)
        self.size = max(MIN_BATCH, min(self.limit, rows * 2, target))
        self.size = min(self.size, self.limit)

    def _pause(self, elapsed: float, already: float) -> None:
        """No transaction for ``MIN_PAUSE`` or ``pause_ratio`` times the last one's length
        (``already`` of it spent in ``after``), then none while this process's writers wait."""
        pause = max(MIN_PAUSE, elapsed * self.pause_ratio) - already
        if pause > 0:
            self.sleep(pause)
        deadline = self.clock() + MAX_YIELD
        while self.writers_waiting() and self.clock() < deadline:
            self.sleep(YIELD_POLL)
