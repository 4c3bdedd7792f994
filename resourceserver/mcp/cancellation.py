"""Cancelling running requests from any worker (MCP 2025-11-25 "Cancellation").

``notifications/cancelled`` may reach a worker other than the one running the request. The
receiving worker cancels a local handler directly; otherwise it logs the cancellation as an
event on the reserved stream ``cancel`` of the session. Every worker with running handlers
watches that stream (one query per interval per process, only while something runs).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from functools import partial

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from resourceserver.mcp.events import EventLog
from resourceserver.storage import McpEvent

logger = logging.getLogger(__name__)

CANCEL_STREAM = "cancel"
Key = tuple[str, str]


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

    def track(self, key: Key, task: asyncio.Task[None]) -> None:
        """Remember a running handler until it finishes."""
        self.running[key] = task
        task.add_done_callback(lambda _t: self._forget(key, task))
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.create_task(self._watch())

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
        last = await self.log.db.run(lambda db: db.scalar(select(func.max(McpEvent.id))) or 0)
        while self.running:
            await asyncio.sleep(self.interval)
            try:
                found = await self.log.db.run(partial(_cancellations_after, last=last))
            except Exception:
                logger.exception("cannot read cancellations")
                continue
            for row_id, session_id, payload in found:
                last = max(last, row_id)
                task = self.running.get((session_id, payload))
                if task is not None:
                    task.cancel()


def _cancellations_after(db: Session, last: int) -> list[tuple[int, str, str]]:
    rows = db.execute(
        select(McpEvent.id, McpEvent.session_id, McpEvent.payload)
        .where(McpEvent.id > last, McpEvent.stream_id == CANCEL_STREAM)
        .order_by(McpEvent.id)
        .limit(500)
    ).all()
    return [(row[0], row[1], row[2]) for row in rows]
