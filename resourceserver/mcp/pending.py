"""Requests the server sends to the client, answered by a later POST.

MCP 2025-11-25 "Transports" §Sending Messages to the Server.

The answer may reach any worker: it is stored in SQL and the waiting worker polls for it, with an
in-process wake-up when both happen in one process.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from resourceserver.mcp.events import Bus
from resourceserver.mcp.jsonrpc import Response
from resourceserver.mcp.wakeups import announce
from resourceserver.storage import Database, McpPendingRequest

JsonObject = dict[str, Any]


class AnswerTimeoutError(TimeoutError):
    """The client did not answer a server-to-client request in time."""


class PendingRequests:
    """Records outgoing requests and waits for their answers."""

    def __init__(
        self, db: Database, bus: Bus, *, poll_interval: float = 0.1, timeout: float = 300.0
    ) -> None:
        self.db = db
        self.bus = bus
        self.poll_interval = poll_interval
        self.timeout = timeout

    async def create(self, session_id: str, method: str) -> str:
        """Record a request about to be sent; returns its JSON-RPC id."""
        now = time.time()
        request_id = f"srv-{secrets.token_urlsafe(12)}"
        row = McpPendingRequest(
            id=request_id,
            session_id=session_id,
            method=method,
            created_at=now,
            expires_at=now + self.timeout,
        )
        await self.db.run(lambda db: db.add(row))
        return request_id

    async def answer(self, session_id: str, response: Response) -> bool:
        """Store the client's answer; False when no such request is waiting in this session."""
        body = json.dumps(response.body)

        def work(db: Session) -> bool:
            result = db.execute(
                update(McpPendingRequest)
                .where(
                    McpPendingRequest.id == str(response.id),
                    McpPendingRequest.session_id == session_id,
                    McpPendingRequest.answer.is_(None),
                )
                .values(answer=body)
            )
            stored = bool(getattr(result, "rowcount", 0))
            if stored:
                announce(db, f"answer:{response.id}")
            return stored

        stored = await self.db.run(work)
        if stored:
            self.bus.notify(f"answer:{response.id}")
        return stored

    async def wait(self, request_id: str) -> JsonObject:
        """The response object (with ``result`` or ``error``); raises AnswerTimeoutError."""
        deadline = time.monotonic() + self.timeout

        def fetch(db: Session) -> str | None:
            answer = db.scalar(
                select(McpPendingRequest.answer).where(McpPendingRequest.id == request_id)
            )
            if answer is not None:
                db.execute(delete(McpPendingRequest).where(McpPendingRequest.id == request_id))
            return answer

        interval = self.poll_interval
        try:
            while True:
                answer = await self.db.run(fetch)
                if answer is not None:
                    body: JsonObject = json.loads(answer)
                    return body
                if time.monotonic() >= deadline:
                    raise AnswerTimeoutError(f"no answer to {request_id} in {self.timeout:.0f}s")
                # Answers posted to this process wake us at once; others are found by polling,
                # less often the longer the client takes (a human may be typing).
                await self.bus.wait(f"answer:{request_id}", interval)
                interval = min(interval * 1.5, max(self.poll_interval, 0.5))
        except BaseException:
            await self.db.run(
                lambda db: db.execute(
                    delete(McpPendingRequest).where(McpPendingRequest.id == request_id)
                )
            )
            raise
