"""Open HTTP+SSE streams (MCP 2024-11-05 "Transports" §HTTP with SSE) in SQL, bound to their
principal (SECURITY-CASES S85).

Each ``GET /sse`` stream serves one MCP session (:mod:`resourceserver.mcp.sessions`) and is
named by an opaque id of its own (256 bits from :mod:`secrets`), the ``session_id`` of the
message endpoint's URL; the MCP session's id is never shown to the client. A stream is found
only by the principal that opened it: same subject, same client and same token audience, on the
same MCP server (``resource``). Anyone else is told "not found", like for an unknown or closed
stream. The one exception is the step-up of S83: a stream opened anonymously (public tools) is
adopted, once and for good, by the first signed-in principal that posts to it.

A signed-in principal keeps at most ``max_per_principal`` open streams: opening one more ends the
least recently used (its MCP session is deleted, so the worker holding it ends the stream at its
next look at the log). Anonymous callers share one identity, so they are not allowed to end
each other's streams: past ``max_anonymous`` open anonymous streams (on one server) a new one is
refused (429); the anonymous rate limit bounds how fast one address opens them. Rows end with
their stream; rows of a stream whose worker died are purged once past ``expires_at`` (at each
open and each housekeeping run).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from resourceserver.principal import Principal
from resourceserver.storage import (
    Database,
    McpEvent,
    McpLegacyStream,
    McpPendingRequest,
    McpSession,
)

#: Open legacy streams one signed-in principal may hold; more end the least recently used.
MAX_STREAMS_PER_PRINCIPAL = 10
#: Open anonymous streams of one MCP server (all anonymous callers together).
MAX_ANONYMOUS_STREAMS = 1000
#: Longest ``session_id`` looked up (ours are 43 characters).
MAX_ID_LENGTH = 64


class TooManyStreamsError(Exception):
    """Anonymous callers would exceed their open-stream cap."""


@dataclass(frozen=True, slots=True)
class LegacyStream:
    """An open stream as a message POST sees it."""

    id: str
    session_id: str


def audience_of(principal: Principal) -> str:
    """The token audience as one comparable string."""
    return " ".join(sorted(principal.audience))[:2048]


def _owned_by(row: McpLegacyStream, principal: Principal, resource: str) -> bool:
    return (
        row.subject == principal.subject
        and row.client_id == principal.client_id
        and row.audience == audience_of(principal)
        and row.resource == resource
    )


class LegacyStreams:
    """Opens, finds, keeps alive and closes legacy streams."""

    def __init__(
        self,
        db: Database,
        ttl_seconds: float,
        *,
        max_per_principal: int = MAX_STREAMS_PER_PRINCIPAL,
        max_anonymous: int = MAX_ANONYMOUS_STREAMS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.ttl = ttl_seconds
        self.max_per_principal = max_per_principal
        self.max_anonymous = max_anonymous
        self.clock = clock

    async def open(self, principal: Principal, resource: str, session_id: str) -> LegacyStream:
        """A new stream serving ``session_id`` (ending the principal's oldest over the cap).

        Raises :class:`TooManyStreamsError` for an anonymous caller over the cap.
        """
        now = self.clock()
        row = McpLegacyStream(
            id=secrets.token_urlsafe(32),
            session_id=session_id,
            subject=principal.subject,
            client_id=principal.client_id,
            audience=audience_of(principal),
            resource=resource,
            created_at=now,
            touched_at=now,
            expires_at=now + self.ttl,
        )

        def work(db: Session) -> None:
            mine = (
                select(McpLegacyStream.id, McpLegacyStream.session_id)
                .where(
                    McpLegacyStream.subject == principal.subject,
                    McpLegacyStream.client_id == principal.client_id,
                    McpLegacyStream.resource == resource,
                    McpLegacyStream.expires_at > now,
                )
                .order_by(McpLegacyStream.touched_at.desc(), McpLegacyStream.created_at.desc())
            )
            if principal.anonymous:
                open_now = db.execute(mine.limit(self.max_anonymous)).all()
                if len(open_now) >= self.max_anonymous:
                    raise TooManyStreamsError
            else:
                surplus = db.execute(mine.offset(self.max_per_principal - 1)).all()
                _close(db, [r[0] for r in surplus], [r[1] for r in surplus])
            db.add(row)

        await self.db.run(work)
        return LegacyStream(row.id, session_id)

    async def find(
        self, stream_id: str, principal: Principal, resource: str
    ) -> LegacyStream | None:
        """The open stream ``stream_id`` of ``principal`` on ``resource``, else None."""
        if not stream_id or len(stream_id) > MAX_ID_LENGTH:
            return None
        now = self.clock()

        def work(db: Session) -> LegacyStream | None:
            row = db.get(McpLegacyStream, stream_id)
            if row is None or row.expires_at <= now or row.resource != resource:
                return None
            if not principal.anonymous and row.subject == "" and row.client_id == "":
                # S83 step-up: the first signed-in principal adopts an anonymous stream.
                row.subject, row.client_id = principal.subject, principal.client_id
                row.audience = audience_of(principal)
            if not _owned_by(row, principal, resource):
                return None
            if now - row.touched_at > min(60.0, self.ttl / 10):
                row.touched_at, row.expires_at = now, now + self.ttl
            return LegacyStream(row.id, row.session_id)

        return await self.db.run(work)

    async def touch(self, stream: LegacyStream) -> bool:
        """Extend the life of an idle open stream and of its session; False once it ended."""
        now = self.clock()

        def work(db: Session) -> bool:
            row = db.get(McpLegacyStream, stream.id)
            session = db.get(McpSession, stream.session_id)
            if row is None or session is None:
                return False
            row.touched_at, row.expires_at = now, now + self.ttl
            session.touched_at, session.expires_at = now, max(session.expires_at, now + self.ttl)
            return True

        return await self.db.run(work)

    async def close(self, stream: LegacyStream) -> None:
        """The stream ended: drop it, its session, and the session's events."""
        await self.db.run(lambda db: _close(db, [stream.id], [stream.session_id]))

    async def purge_expired(self) -> int:
        """Delete streams past their expiry (their worker died) with their sessions."""
        return await self.db.run(lambda db: purge_expired_streams(db, self.clock()))


def purge_expired_streams(db: Session, now: float, batch_size: int = 500) -> int:
    """One batch of streams past ``expires_at``, and those whose session is gone."""
    expired = db.execute(
        select(McpLegacyStream.id, McpLegacyStream.session_id)
        .where(McpLegacyStream.expires_at <= now)
        .limit(batch_size)
    ).all()
    orphans = db.execute(
        select(McpLegacyStream.id, McpLegacyStream.session_id)
        .where(McpLegacyStream.session_id.not_in(select(McpSession.id)))
        .limit(batch_size)
    ).all()
    rows = {*expired, *orphans}
    _close(db, [r[0] for r in rows], [r[1] for r in rows])
    return len(rows)


def count_open(db: Session) -> int:
    """Open legacy streams (every principal)."""
    return db.scalar(select(func.count()).select_from(McpLegacyStream)) or 0


def _close(db: Session, stream_ids: list[str], session_ids: list[str]) -> None:
    if not stream_ids:
        return
    db.execute(delete(McpLegacyStream).where(McpLegacyStream.id.in_(stream_ids)))
    if session_ids:
        db.execute(delete(McpEvent).where(McpEvent.session_id.in_(session_ids)))
        db.execute(delete(McpPendingRequest).where(McpPendingRequest.session_id.in_(session_ids)))
        db.execute(delete(McpSession).where(McpSession.id.in_(session_ids)))
