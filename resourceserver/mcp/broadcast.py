"""Change notifications for ``subscriptions/listen`` streams on every worker.

MCP 2026-07-28 "Subscriptions": list changes, resource updates and (tasks extension) task
status changes reach every listener that asked for them, whichever worker the change happened
on and whichever worker holds the stream.

A change is one row of ``rs_mcp_broadcasts``. The writer commits it and announces it
(PostgreSQL ``NOTIFY``, forwarded to each process's bus; in-process at once); one watcher per
worker, running only while that worker holds listeners, reads the rows after its cursor and
hands them to its listeners' queues, also every ``poll_interval`` seconds without a wake-up
(the SQLite path). Publishers take a transaction-level advisory lock on PostgreSQL so that
rows commit in id order and the single cursor skips nothing (SQLite writes one transaction at a
time anyway). Rows older than ``retention`` seconds are purged by publishers, at most once a
minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from sqlalchemy import delete, func, select, text
from sqlalchemy.orm import Session

from resourceserver.mcp.background import OnDemandTask
from resourceserver.mcp.bus import Bus
from resourceserver.mcp.wake import Wake
from resourceserver.mcp.wakeups import announce
from resourceserver.storage import Database, McpBroadcast

logger = logging.getLogger(__name__)

#: The bus key (and NOTIFY payload) announcing new rows.
WAKE_KEY = "broadcast"
#: Arbitrary constant naming the PostgreSQL advisory lock that orders publishers.
_ADVISORY_LOCK = 7_302_026
_ROWS_PER_READ = 500


@dataclass(frozen=True, slots=True)
class Change:
    """One change, as listeners see it."""

    id: int
    kind: str
    key: str
    subject: str | None
    client_id: str | None


#: Changes one listener may have waiting; more are dropped for it (with a warning).
INBOX_LIMIT = 1000


class Inbox:
    """The changes waiting for one listener, and the wake-up of its stream.

    A list and a :class:`~resourceserver.mcp.wake.Wake` rather than an :class:`asyncio.Queue`
    (three deques) and a task per wait: each open listener costs a few hundred bytes here.
    """

    __slots__ = ("changes", "wake")

    def __init__(self) -> None:
        self.changes: list[Change] = []
        self.wake = Wake()

    def full(self) -> bool:
        return len(self.changes) >= INBOX_LIMIT

    def put(self, change: Change) -> None:
        self.changes.append(change)
        self.wake.set()

    def take(self) -> Change | None:
        """The oldest waiting change, or None."""
        return self.changes.pop(0) if self.changes else None


class Broadcasts:
    """Publishes changes and feeds them to this worker's listeners."""

    def __init__(
        self,
        db: Database,
        bus: Bus,
        *,
        poll_interval: float = 0.5,
        retention: float = 600.0,
    ) -> None:
        self.db = db
        self.bus = bus
        self.poll_interval = poll_interval
        self.retention = retention
        self._inboxes: set[Inbox] = set()
        self._cursor: int | None = None
        self._watcher = OnDemandTask(self._watch)
        self._purged_at = 0.0

    async def publish(
        self, kind: str, key: str = "", *, subject: str | None = None, client_id: str | None = None
    ) -> None:
        """Record a change for every worker's listeners."""
        now = time.time()
        purge = now - self._purged_at > 60.0
        if purge:
            self._purged_at = now
        row = McpBroadcast(kind=kind, key=key, subject=subject, client_id=client_id, created_at=now)

        def work(db: Session) -> None:
            if db.get_bind().dialect.name == "postgresql":
                db.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK})
            if purge:
                db.execute(
                    delete(McpBroadcast).where(McpBroadcast.created_at < now - self.retention)
                )
            db.add(row)
            announce(db, WAKE_KEY)

        await self.db.run(work)
        self.bus.notify(WAKE_KEY)

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[Inbox]:
        """An inbox receiving every change committed from now on, while the block runs."""
        inbox = await self.join()
        try:
            yield inbox
        finally:
            self.leave(inbox)

    async def join(self) -> Inbox:
        """An inbox receiving every change committed from now on, until :meth:`leave`."""
        inbox = Inbox()
        if self._cursor is None:
            self._cursor = await self.db.run(_newest_id)
        self._inboxes.add(inbox)
        self._watcher.ensure_running()
        return inbox

    def leave(self, inbox: Inbox) -> None:
        self._inboxes.discard(inbox)

    async def aclose(self) -> None:
        """Stop the watcher (shutdown)."""
        await self._watcher.aclose()

    async def _watch(self) -> None:
        with self.bus.watch(WAKE_KEY) as woken:
            while self._inboxes:
                woken.clear()
                try:
                    changes = await self.db.run(self._read)
                except Exception as exc:  # keep listening through outages (S61)
                    logger.warning("cannot read change notifications (%s)", type(exc).__name__)
                    changes = []
                self._fan_out(changes)
                if len(changes) < _ROWS_PER_READ:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(woken.wait(), self.poll_interval)
        self._cursor = None

    def _read(self, db: Session) -> list[Change]:
        rows = db.execute(
            select(
                McpBroadcast.id,
                McpBroadcast.kind,
                McpBroadcast.key,
                McpBroadcast.subject,
                McpBroadcast.client_id,
            )
            .where(McpBroadcast.id > (self._cursor or 0))
            .order_by(McpBroadcast.id)
            .limit(_ROWS_PER_READ)
        ).all()
        return [Change(*row) for row in rows]

    def _fan_out(self, changes: list[Change]) -> None:
        for change in changes:
            self._cursor = max(self._cursor or 0, change.id)
            for inbox in list(self._inboxes):
                if inbox.full():
                    logger.warning("a listener is not keeping up; dropping a change for it")
                    continue
                inbox.put(change)


def _newest_id(db: Session) -> int:
    return int(db.scalar(select(func.coalesce(func.max(McpBroadcast.id), 0))) or 0)
