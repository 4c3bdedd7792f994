"""One shared watcher per worker for idle SSE streams (MCP 2025-11-25 "Transports"
§Resumability and Redelivery, §Listening for Messages from the Server).

An open stream used to look for new events itself: two queries per stream up to once a
second, so 1,000 idle streams kept a core busy. :class:`StreamWatcher` does it once for all
of them: every ``interval`` seconds, while any stream is open, one query reads the ids of the
events logged since its last look (by any process) and wakes, through the
:class:`~resourceserver.mcp.bus.Bus`, exactly the streams that got one; every fourth look, one
more query per 900 open sessions finds sessions that ended (DELETE, expiry, purge) and wakes
their streams, which then see that themselves. A stream queries the database only when
woken. Writes in this process (and, on PostgreSQL, ``NOTIFY`` from other workers) still wake
streams at once; the watcher is what finds every other write within ``interval``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter, defaultdict
from collections.abc import Iterator
from functools import partial

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from resourceserver.mcp.background import OnDemandTask
from resourceserver.mcp.bus import Bus
from resourceserver.storage import Database, McpEvent, McpSession

#: Session ids per "which of these still exist" query (below SQLite's parameter limits).
SESSION_CHUNK = 900
#: Event rows read per look; more wait for the next one.
EVENT_BATCH = 20_000
#: Looks per check for ended sessions.
SESSION_CHECK_EVERY = 4


def stream_key(session_id: str, stream_id: str) -> str:
    """The :class:`Bus` key of one logged stream (the same as the event log's)."""
    return f"stream:{session_id}:{stream_id}"


class StreamWatcher:
    """Wakes open streams whose session got an event or ended; one task for all of them."""

    def __init__(self, db: Database, bus: Bus, interval: float = 0.25) -> None:
        self.db = db
        self.bus = bus
        self.interval = interval
        # session -> stream id -> connections following it (a takeover briefly makes two)
        self._open: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self._task = OnDemandTask(self._run)
        self._last_row: int | None = None
        self._looks = 0

    @contextlib.contextmanager
    def watching(self, session_id: str, stream_id: str) -> Iterator[None]:
        """Keep the stream in the watched set while the block runs."""
        self.follow(session_id, stream_id)
        try:
            yield
        finally:
            self.unfollow(session_id, stream_id)

    def follow(self, session_id: str, stream_id: str) -> None:
        """Add one connection following the stream (until :meth:`unfollow`)."""
        self._open[session_id][stream_id] += 1
        self._task.ensure_running()

    def unfollow(self, session_id: str, stream_id: str) -> None:
        streams = self._open.get(session_id)
        if streams is not None:
            streams[stream_id] -= 1
            if streams[stream_id] <= 0:
                del streams[stream_id]
            if not streams:
                del self._open[session_id]

    async def aclose(self) -> None:
        await self._task.aclose()

    async def _run(self) -> None:
        self._last_row = None
        while self._open:
            await asyncio.sleep(self.interval)
            sessions = list(self._open)
            if not sessions:
                break
            with contextlib.suppress(Exception):  # the database is back at the next look
                touched, gone = await self.db.run(partial(self._look, sessions=sessions))
                self._wake(touched, gone)

    def _look(self, db: Session, *, sessions: list[str]) -> tuple[list[tuple[str, str]], set[str]]:
        if self._last_row is None:  # a first look: every stream open now looks once
            self._last_row = db.execute(select(func.max(McpEvent.id))).scalar() or 0
            return [(s, stream) for s in sessions for stream in self._open.get(s, ())], set()
        rows = db.execute(
            select(McpEvent.id, McpEvent.session_id, McpEvent.stream_id)
            .where(McpEvent.id > self._last_row)
            .order_by(McpEvent.id)
            .limit(EVENT_BATCH)
        ).all()
        if rows:
            self._last_row = rows[-1][0]
        self._looks += 1
        if self._looks % SESSION_CHECK_EVERY:
            return [(row[1], row[2]) for row in rows], set()
        alive: set[str] = set()
        for start in range(0, len(sessions), SESSION_CHUNK):
            chunk = sessions[start : start + SESSION_CHUNK]
            alive.update(db.scalars(select(McpSession.id).where(McpSession.id.in_(chunk))))
        return [(row[1], row[2]) for row in rows], set(sessions) - alive

    def _wake(self, touched: list[tuple[str, str]], gone: set[str]) -> None:
        for session_id, stream_id in touched:
            if stream_id in self._open.get(session_id, ()):
                self.bus.notify(stream_key(session_id, stream_id))
        for session_id in gone:
            for stream_id in list(self._open.get(session_id, ())):
                self.bus.notify(stream_key(session_id, stream_id))
