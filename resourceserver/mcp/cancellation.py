"""Cancelling running requests from any worker (MCP 2025-11-25 "Cancellation").

``notifications/cancelled`` may reach a worker other than the one running the request. The
receiving worker cancels a local handler directly; otherwise it logs the cancellation as an
event on the reserved stream ``cancel`` of the session. Every worker with running handlers
watches that stream (one query per interval per process, only while something runs).

The watcher reads with one cursor (the last row id read) per session that has handlers running
in this process, never one cursor for all sessions: PostgreSQL hands out ids before commit, so
rows of *different* sessions become visible out of id order, and a global cursor that moved
past another session's newer row would skip a cancellation committed just after. Within one
session rows become visible in id order (:meth:`EventLog.append` serialises a session's
appends), so a per-session cursor misses nothing. A session's cursor starts at the session's
newest row, read right after its first handler here is tracked (at once, not at the next poll):
a cancellation logged after that read is seen. One committed before it crossed the request
(sent while the request was in transit, or in the query or two since it arrived), which MCP
lets receivers ignore; starting lower would instead apply old cancellations to a request that
reuses an id. The cursor is dropped once the session has no handler running here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Iterable
from functools import partial

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from resourceserver.mcp.events import EventLog
from resourceserver.storage import McpEvent

logger = logging.getLogger(__name__)

CANCEL_STREAM = "cancel"
Key = tuple[str, str]

#: Sessions per statement (keeps the OR of per-session conditions small for SQLite's parser).
SESSIONS_PER_QUERY = 100
#: Rows per statement; a full page is followed by another poll at once.
ROWS_PER_QUERY = 500


def request_key(session_id: str, request_id: object) -> Key:
    """How running requests are named: session id and the JSON of the request id."""
    return session_id, json.dumps(request_id)


class Cancellations:
    """Tracks the handlers running in this process and cancels them on request."""

    def __init__(self, log: EventLog, interval: float = 0.5) -> None:
        self.log = log
        self.interval = interval
        self.running: dict[Key, asyncio.Task[None]] = {}
        self._watcher: asyncio.Task[None] | None = None
        #: Per session with handlers running here: the last cancel row id seen (or its start).
        self._cursors: dict[str, int] = {}
        #: Set when a handler is tracked, so a new session's cursor is taken without delay.
        self._tracked = asyncio.Event()

    def track(self, key: Key, task: asyncio.Task[None]) -> None:
        """Remember a running handler until it finishes."""
        self.running[key] = task
        task.add_done_callback(lambda _t: self._forget(key, task))
        if self._watcher is None or self._watcher.done():
            self._tracked = asyncio.Event()
            self._watcher = asyncio.create_task(self._watch())
        self._tracked.set()

    def _forget(self, key: Key, task: asyncio.Task[None]) -> None:
        if self.running.get(key) is task:
            del self.running[key]

    async def cancel(self, session_id: str, request_id: object) -> None:
        """Cancel the request here, or tell the other workers."""
        key = request_key(session_id, request_id)
        task = self.running.get(key)
        if task is not None:
            task.cancel()
        else:
            await self.log.append(session_id, CANCEL_STREAM, key[1], final=False)

    def cancel_session(self, session_id: str) -> None:
        """Cancel this process's handlers of one session (the session ended)."""
        for (owner, _), task in list(self.running.items()):
            if owner == session_id:
                task.cancel()

    async def aclose(self) -> None:
        """Cancel everything still running (shutdown)."""
        tasks = list(self.running.values())
        if self._watcher is not None:
            tasks.append(self._watcher)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        next_poll = loop.time() + self.interval
        try:
            while self.running:
                # Cleared before looking at ``running``: a handler tracked later wakes us.
                self._tracked.clear()
                await self._start_cursors()
                delay = next_poll - loop.time()
                if delay > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._tracked.wait(), delay)
                    continue
                next_poll = loop.time() + self.interval
                if self._cursors and await self._poll():
                    next_poll = loop.time()
        finally:
            self._cursors.clear()

    async def _start_cursors(self) -> None:
        """Drop the cursors of sessions with nothing running; start those of new ones."""
        live = {owner for owner, _ in self.running}
        for gone in self._cursors.keys() - live:
            del self._cursors[gone]
        new = sorted(live - self._cursors.keys())
        if not new:
            return
        try:
            starts = await self.log.db.run(partial(_newest_rows, sessions=new))
        except Exception:
            logger.exception("cannot read cancellations")
        else:
            self._cursors.update(starts)

    async def _poll(self) -> bool:
        """Cancel what was asked since the cursors; True when a page was full (poll again)."""
        try:
            found, full = await self.log.db.run(
                partial(_cancellations_after, cursors=dict(self._cursors))
            )
        except Exception:
            logger.exception("cannot read cancellations")
            return False
        for row_id, session_id, payload in found:
            if session_id in self._cursors:
                self._cursors[session_id] = max(self._cursors[session_id], row_id)
            task = self.running.get((session_id, payload))
            if task is not None:
                task.cancel()
        return full


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _newest_rows(db: Session, sessions: list[str]) -> dict[str, int]:
    """Each session's newest event id (0 if it has none): where its cursor starts."""
    starts = dict.fromkeys(sessions, 0)
    for chunk in _chunks(sessions, SESSIONS_PER_QUERY):
        rows = db.execute(
            select(McpEvent.session_id, func.max(McpEvent.id))
            .where(McpEvent.session_id.in_(chunk))
            .group_by(McpEvent.session_id)
        ).all()
        for session_id, newest in rows:
            if newest is not None:
                starts[session_id] = newest
    return starts


def _cancellations_after(
    db: Session, cursors: dict[str, int]
) -> tuple[list[tuple[int, str, str]], bool]:
    """Cancel rows of the given sessions above their cursors, and whether a page was full.

    Each statement returns the lowest ids first, so the rows of a session are always a prefix
    of its rows above the cursor: advancing the cursor to the highest one read skips nothing.
    """
    found: list[tuple[int, str, str]] = []
    full = False
    for chunk in _chunks(sorted(cursors), SESSIONS_PER_QUERY):
        above = [
            and_(
                McpEvent.session_id == session_id,
                McpEvent.stream_id == CANCEL_STREAM,
                McpEvent.id > cursors[session_id],
            )
            for session_id in chunk
        ]
        rows = db.execute(
            select(McpEvent.id, McpEvent.session_id, McpEvent.payload)
            .where(or_(*above))
            .order_by(McpEvent.id)
            .limit(ROWS_PER_QUERY)
        ).all()
        full = full or len(rows) == ROWS_PER_QUERY
        found.extend((row[0], row[1], row[2]) for row in rows)
    return found, full
