"""The SSE event log and in-process wake-ups.

MCP 2025-11-25 "Transports" §Resumability and Redelivery.

Every event sent on a POST or GET stream is stored with a per-session stream id, so a client that
lost a stream resumes it on any worker with ``Last-Event-ID``. Waiting code polls the database;
the :class:`~resourceserver.mcp.bus.Bus` wakes it at once when the event was written in the same
process. Idle streams do not poll: one
:class:`~resourceserver.mcp.stream_watch.StreamWatcher` per log looks for all of them.

Readers follow a stream with a cursor (the last row id read), so within a session rows must
become visible in id order: :meth:`EventLog.append` locks the session's row first (PostgreSQL
hands out ids before commit; SQLite writes one transaction at a time anyway).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from resourceserver.mcp.bus import Bus
from resourceserver.mcp.heartbeat import Heartbeat
from resourceserver.mcp.stream_watch import StreamWatcher, stream_key
from resourceserver.mcp.wakeups import announce, announce_each
from resourceserver.storage import Database, McpEvent, McpSession

__all__ = [
    "Bus",
    "EventLog",
    "SessionGoneError",
    "StoredEvent",
    "make_event_id",
    "new_stream_id",
    "parse_event_id",
]


class SessionGoneError(LookupError):
    """The session ended (DELETE, expiry) while something was about to log an event for it."""


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One logged SSE event."""

    event_id: str
    payload: str
    final: bool

    @property
    def row(self) -> int:
        """The row id: the position in the session's log."""
        return int(self.event_id.rpartition(".")[2])


def new_stream_id() -> str:
    """A fresh stream id (no dots, so event ids split unambiguously)."""
    return secrets.token_urlsafe(12)


def make_event_id(stream_id: str, row_id: int) -> str:
    """``<stream>.<row>``: names the stream to resume and the position in it."""
    return f"{stream_id}.{row_id}"


def parse_event_id(value: str) -> tuple[str, int] | None:
    """Split an event id, or None if it is not one of ours."""
    stream_id, _, row = value.rpartition(".")
    if not stream_id or not row.isdigit() or len(value) > 128:
        return None
    return stream_id, int(row)


#: Sessions per transaction of :meth:`EventLog.append_to_each` (below SQLite's parameter limit).
FAN_OUT_CHUNK = 500


class EventLog:
    """Appends and replays the events of a session's streams."""

    def __init__(self, db: Database, bus: Bus, watch_interval: float = 0.25) -> None:
        self.db = db
        self.bus = bus
        #: Wakes idle streams for events and ended sessions, one query for all of them.
        self.watcher = StreamWatcher(db, bus, watch_interval)
        #: The keep-alive ticks of idle streams, one task per keep-alive period.
        self.heartbeats: dict[float, Heartbeat] = {}

    def heartbeat(self, period: float) -> Heartbeat:
        """The shared keep-alive tick of streams with keep-alive ``period``."""
        found = self.heartbeats.get(period)
        if found is None:
            found = self.heartbeats[period] = Heartbeat(period)
        return found

    async def aclose(self) -> None:
        """Stop the watcher and the heartbeats (shutdown)."""
        await self.watcher.aclose()
        for heartbeat in self.heartbeats.values():
            await heartbeat.aclose()

    @staticmethod
    def key(session_id: str, stream_id: str) -> str:
        return stream_key(session_id, stream_id)

    async def append(self, session_id: str, stream_id: str, payload: str, final: bool) -> str:
        """Store one event and return its id."""
        row = McpEvent(
            session_id=session_id,
            stream_id=stream_id,
            payload=payload,
            final=final,
            created_at=time.time(),
        )

        def work(db: Session) -> int:
            # Serialise the session's appends, so that its ids commit in order.
            locked = db.execute(
                select(McpSession.id).where(McpSession.id == session_id).with_for_update()
            ).first()
            if locked is None:
                raise SessionGoneError(session_id)
            db.add(row)
            db.flush()
            announce(db, self.key(session_id, stream_id))
            return row.id

        row_id = await self.db.run(work)
        self.bus.notify(self.key(session_id, stream_id))
        return make_event_id(stream_id, row_id)

    async def append_to_each(self, session_ids: Sequence[str], stream_id: str, payload: str) -> int:
        """Store the same event on ``stream_id`` of each of ``session_ids`` (a notification to
        many sessions): one transaction per :data:`FAN_OUT_CHUNK` sessions rather than one per
        session. Sessions gone meanwhile are skipped; returns how many got it."""
        created = time.time()

        def work(db: Session, chunk: Sequence[str]) -> list[str]:
            # Lock the sessions in id order (the order every batch takes them in), so that their
            # appends stay serialised as in :meth:`append`.
            locked = list(
                db.scalars(
                    select(McpSession.id)
                    .where(McpSession.id.in_(chunk))
                    .order_by(McpSession.id)
                    .with_for_update()
                )
            )
            if locked:
                rows = [
                    {
                        "session_id": session_id,
                        "stream_id": stream_id,
                        "payload": payload,
                        "final": False,
                        "created_at": created,
                    }
                    for session_id in locked
                ]
                db.execute(insert(McpEvent), rows)
                announce_each(db, [self.key(session_id, stream_id) for session_id in locked])
            return locked

        ordered = sorted(set(session_ids))
        done = 0
        for start in range(0, len(ordered), FAN_OUT_CHUNK):
            chunk = ordered[start : start + FAN_OUT_CHUNK]
            locked = await self.db.run(partial(work, chunk=chunk))
            for session_id in locked:
                self.bus.notify(self.key(session_id, stream_id))
            done += len(locked)
        return done

    async def after(self, session_id: str, stream_id: str, row_id: int) -> list[StoredEvent]:
        """Events of one stream after ``row_id``, oldest first."""
        return await self.db.run(lambda db: self._after(db, session_id, stream_id, row_id))

    @staticmethod
    def _after(db: Session, session_id: str, stream_id: str, row_id: int) -> list[StoredEvent]:
        rows = db.execute(
            select(McpEvent.id, McpEvent.payload, McpEvent.final)
            .where(
                McpEvent.session_id == session_id,
                McpEvent.stream_id == stream_id,
                McpEvent.id > row_id,
            )
            .order_by(McpEvent.id)
            .limit(500)
        ).all()
        return [StoredEvent(make_event_id(stream_id, r[0]), r[1], r[2]) for r in rows]

    async def poll(self, session_id: str, stream_id: str, row_id: int) -> list[StoredEvent] | None:
        """Like :meth:`after`, but None once the session is gone (deleted or purged)."""

        def work(db: Session) -> list[StoredEvent] | None:
            if db.get(McpSession, session_id) is None:
                return None
            return self._after(db, session_id, stream_id, row_id)

        return await self.db.run(work)
