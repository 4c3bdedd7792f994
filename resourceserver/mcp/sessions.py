"""MCP sessions in SQL, bound to the principal that created them.

MCP 2025-11-25 "Transports" §Session Management.

The session id is 256 bits from :mod:`secrets`. A session is found only by the same subject and
client that created it; anyone else gets "not found" (SECURITY-CASES S44).

A principal keeps at most :data:`MAX_SESSIONS_PER_PRINCIPAL` sessions: a new one ends the least
recently used beyond that (its client gets 404 and, as the spec says, starts a new session), so
a client that never ends its sessions cannot grow the table without bound.

Each worker keeps what it read of a session for :data:`SESSION_CACHE_SECONDS`, so that a
client's stream of calls does not read the session row on every request (DESIGN: the ``/mcp``
hot path reads the database through caches). A change made by this worker drops its entry at
once; a change made by another worker (a new log level, a subscription, the end of the
session) is seen here within that second. The binding to the principal never changes, but
once: a session opened anonymously (public tools, S83) is adopted by the first signed-in
principal that uses it, after which anonymous callers get "not found" (another worker's cache
may still serve the anonymous caller for up to that second). Anonymous sessions are not capped
per principal (they all share one identity); the anonymous rate limit bounds them.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from resourceserver.principal import Principal
from resourceserver.storage import Database, McpEvent, McpPendingRequest, McpSession

JsonObject = dict[str, Any]

#: Live sessions one principal (subject and client) may hold; more end the least recently used.
MAX_SESSIONS_PER_PRINCIPAL = 100
#: How long a worker trusts what it read of a session, seconds.
SESSION_CACHE_SECONDS = 1.0
#: Sessions a worker remembers at most (least recently read are forgotten first).
SESSION_CACHE_SIZE = 10_000


@dataclass(frozen=True, slots=True)
class SessionState:
    """A snapshot of one session as a request sees it."""

    id: str
    subject: str
    client_id: str
    protocol_version: str
    client_capabilities: JsonObject
    log_level: str | None
    subscriptions: tuple[str, ...]
    initialized: bool


def _state(row: McpSession) -> SessionState:
    return SessionState(
        id=row.id,
        subject=row.subject,
        client_id=row.client_id,
        protocol_version=row.protocol_version,
        client_capabilities=dict(row.client_capabilities or {}),
        log_level=row.log_level,
        subscriptions=tuple(row.subscriptions or ()),
        initialized=row.initialized,
    )


class SessionStore:
    """Creates, finds, updates and ends sessions."""

    def __init__(
        self,
        db: Database,
        ttl_seconds: float,
        clock: Callable[[], float] = time.time,
        *,
        max_per_principal: int = MAX_SESSIONS_PER_PRINCIPAL,
        cache_seconds: float = SESSION_CACHE_SECONDS,
    ) -> None:
        self.db = db
        self.ttl = ttl_seconds
        self.clock = clock
        self.max_per_principal = max_per_principal
        self.cache_seconds = cache_seconds
        #: id -> (read at, session, expires at), least recently read first.
        self._cache: OrderedDict[str, tuple[float, SessionState, float]] = OrderedDict()

    def _remember(self, state: SessionState, expires_at: float) -> None:
        if self.cache_seconds <= 0:
            return
        self._cache[state.id] = (self.clock(), state, expires_at)
        self._cache.move_to_end(state.id)
        while len(self._cache) > SESSION_CACHE_SIZE:
            self._cache.popitem(last=False)

    def _forget(self, *session_ids: str) -> None:
        for session_id in session_ids:
            self._cache.pop(session_id, None)

    def _cached(self, session_id: str, principal: Principal, now: float) -> SessionState | None:
        entry = self._cache.get(session_id)
        if entry is None:
            return None
        read_at, state, expires_at = entry
        if now - read_at >= self.cache_seconds or now >= expires_at:
            del self._cache[session_id]
            return None
        if state.subject != principal.subject or state.client_id != principal.client_id:
            return None
        return state

    async def create(
        self,
        principal: Principal,
        protocol_version: str,
        client_info: JsonObject,
        capabilities: JsonObject,
    ) -> SessionState:
        """A new session for ``principal`` (ending its least recently used ones over the cap)."""
        now = self.clock()
        row = McpSession(
            id=secrets.token_urlsafe(32),
            subject=principal.subject,
            client_id=principal.client_id,
            protocol_version=protocol_version,
            client_info=client_info,
            client_capabilities=capabilities,
            initialized=False,
            log_level=None,
            subscriptions=[],
            created_at=now,
            touched_at=now,
            expires_at=now + self.ttl,
        )

        def work(db: Session) -> tuple[SessionState, list[str]]:
            db.add(row)
            db.flush()
            if principal.anonymous:  # bounded by the anonymous rate limit and the TTL
                return _state(row), []
            surplus = db.scalars(
                select(McpSession.id)
                .where(
                    McpSession.subject == principal.subject,
                    McpSession.client_id == principal.client_id,
                )
                .order_by(McpSession.touched_at.desc(), McpSession.created_at.desc())
                .offset(self.max_per_principal)
            ).all()
            ended = [session_id for session_id in surplus if session_id != row.id]
            _delete(db, ended)
            return _state(row), ended

        state, ended = await self.db.run(work)
        self._forget(*ended)
        self._remember(state, row.expires_at)
        return state

    async def load(self, session_id: str, principal: Principal) -> SessionState | None:
        """The live session with this id owned by ``principal``, else None (extends its life)."""
        now = self.clock()
        cached = self._cached(session_id, principal, now)
        if cached is not None:
            return cached

        def work(db: Session) -> tuple[SessionState, float] | None:
            row = db.get(McpSession, session_id)
            if row is None or row.expires_at <= now:
                return None
            if _adoptable(row, principal):
                row.subject, row.client_id = principal.subject, principal.client_id
            if row.subject != principal.subject or row.client_id != principal.client_id:
                return None
            if now - row.touched_at > min(60.0, self.ttl / 10):
                row.touched_at = now
                row.expires_at = now + self.ttl
            return _state(row), row.expires_at

        found: tuple[SessionState, float] | None = await self.db.run(work)
        if found is None:
            self._forget(session_id)
            return None
        self._remember(*found)
        return found[0]

    async def update(self, session_id: str, **changes: Any) -> None:
        """Set columns (``initialized``, ``log_level``, ``subscriptions``) of a session."""

        def work(db: Session) -> None:
            row = db.get(McpSession, session_id)
            if row is not None:
                for key, value in changes.items():
                    setattr(row, key, value)

        # Forgotten before and after the write: a read racing it cannot keep the old state.
        self._forget(session_id)
        await self.db.run(work)
        self._forget(session_id)

    async def subscribe(self, session_id: str, uri: str, on: bool) -> None:
        """Add or remove a resource subscription."""

        def work(db: Session) -> None:
            row = db.get(McpSession, session_id)
            if row is not None:
                current = [u for u in (row.subscriptions or []) if u != uri]
                row.subscriptions = [*current, uri] if on else current

        self._forget(session_id)
        await self.db.run(work)
        self._forget(session_id)

    async def delete(self, session_id: str) -> None:
        """End a session and drop its events and pending requests."""
        self._forget(session_id)
        await self.db.run(lambda db: _delete(db, [session_id]))
        self._forget(session_id)

    async def subscribed_to(self, uri: str, *, subject: str | None = None) -> list[str]:
        """Ids of live sessions subscribed to ``uri`` (only ``subject``'s, when given)."""
        now = self.clock()

        def work(db: Session) -> list[str]:
            query = select(McpSession.id, McpSession.subscriptions).where(
                McpSession.expires_at > now
            )
            if subject is not None:
                query = query.where(McpSession.subject == subject)
            return [row[0] for row in db.execute(query) if uri in (row[1] or ())]

        return await self.db.run(work)

    async def purge_expired(self) -> int:
        """Delete sessions past their expiry, and events older than a session's lifetime
        (except each session's newest); returns how many sessions."""
        now = self.clock()

        def work(db: Session) -> int:
            ids = list(
                db.scalars(select(McpSession.id).where(McpSession.expires_at <= now).limit(500))
            )
            _delete(db, ids)
            # Each session keeps its newest old event: SQLite numbers a new row one past the
            # largest id left in the table, and every id it hands out must stay above the
            # position of each live session's streams (events, claims).
            old = McpEvent.created_at < now - self.ttl
            newest = select(func.max(McpEvent.id)).where(old).group_by(McpEvent.session_id)
            db.execute(delete(McpEvent).where(old, McpEvent.id.not_in(newest)))
            db.execute(delete(McpPendingRequest).where(McpPendingRequest.expires_at < now))
            return len(ids)

        return await self.db.run(work)


def _delete(db: Session, ids: list[str]) -> None:
    if not ids:
        return
    db.execute(delete(McpEvent).where(McpEvent.session_id.in_(ids)))
    db.execute(delete(McpPendingRequest).where(McpPendingRequest.session_id.in_(ids)))
    db.execute(delete(McpSession).where(McpSession.id.in_(ids)))


def _adoptable(row: McpSession, principal: Principal) -> bool:
    """An anonymous session is taken over, once and for good, by the first signed-in principal
    that uses it (step-up: the client signed in on a 401 and repeats the request)."""
    return not principal.anonymous and row.subject == "" and row.client_id == ""
