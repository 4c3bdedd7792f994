"""In-process wake-ups keyed by a string.

Code waiting for a row another request writes (an SSE event, a client's answer, a task
update) polls the database; the :class:`Bus` wakes it at once when the write happened in the
same process, and :class:`~resourceserver.mcp.wakeups.PgListener` forwards PostgreSQL
``NOTIFY`` keys to it for writes made by other processes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Iterator
from typing import Protocol


class Waiter(Protocol):
    """What a notification sets: an :class:`asyncio.Event` or a stream's ``Wake``."""

    def set(self) -> None: ...


class Bus:
    """In-process wake-ups keyed by a string; polling remains the cross-process path."""

    def __init__(self) -> None:
        self._waiters: defaultdict[str, set[Waiter]] = defaultdict(set)

    def notify(self, key: str) -> None:
        """Wake everyone waiting on ``key`` in this process."""
        for waiter in self._waiters.get(key, ()):
            waiter.set()

    async def wait(self, key: str, timeout: float) -> None:
        """Return when ``key`` is notified or ``timeout`` seconds passed."""
        with self.watch(key) as waiter:
            try:
                await asyncio.wait_for(waiter.wait(), timeout)
            except TimeoutError:
                pass

    @contextlib.contextmanager
    def watch(self, key: str) -> Iterator[asyncio.Event]:
        """An event set by every notification of ``key`` while the block runs.

        Clear it before reading the database, wait on it after: a notification in between is
        not lost.
        """
        waiter = asyncio.Event()
        with self.joined(key, waiter):
            yield waiter

    @contextlib.contextmanager
    def joined(self, key: str, waiter: Waiter) -> Iterator[None]:
        """Set ``waiter`` at every notification of ``key`` while the block runs."""
        self.add(key, waiter)
        try:
            yield
        finally:
            self.discard(key, waiter)

    def add(self, key: str, waiter: Waiter) -> None:
        """Set ``waiter`` at every notification of ``key`` until :meth:`discard`."""
        self._waiters[key].add(waiter)

    def discard(self, key: str, waiter: Waiter) -> None:
        waiters = self._waiters.get(key)
        if waiters is not None:
            waiters.discard(waiter)
            if not waiters:
                del self._waiters[key]
