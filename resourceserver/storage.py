"""SQL tables of the resource server: MCP sessions, SSE event logs, legacy HTTP+SSE streams,
pending requests, tasks, change notifications, notes.

Everything a later MCP request may need lives here rather than in one worker's memory, so any
worker on a shared database can serve any request (MCP 2025-11-25 "Transports" §Session
Management and §Resumability and Redelivery). The resource server has its own ``MetaData`` and
never imports the authorization server's models; migrations include :data:`metadata`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import anyio.to_thread
from sqlalchemy import (
    JSON,
    Boolean,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    create_engine,
    event,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

T = TypeVar("T")

_NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base of the resource server's tables (its own ``MetaData``)."""

    metadata = MetaData(naming_convention=_NAMING)


#: The resource server's tables, for alembic and :func:`create_tables`.
metadata = Base.metadata


class McpSession(Base):
    """One MCP session, bound to the principal (subject and client) that created it."""

    __tablename__ = "rs_mcp_sessions"
    #: Finds a principal's sessions (their number is capped).
    __table_args__ = (Index("ix_rs_mcp_sessions_principal", "subject", "client_id"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    subject: Mapped[str] = mapped_column(String(255))
    client_id: Mapped[str] = mapped_column(String(512))
    protocol_version: Mapped[str] = mapped_column(String(32))
    client_info: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    client_capabilities: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    initialized: Mapped[bool] = mapped_column(Boolean, default=False)
    log_level: Mapped[str | None] = mapped_column(String(16), nullable=True)
    subscriptions: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[float] = mapped_column(Float)
    touched_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float, index=True)


class McpEvent(Base):
    """One SSE event of one stream of a session, kept for ``Last-Event-ID`` resumption."""

    __tablename__ = "rs_mcp_events"
    __table_args__ = (Index("ix_rs_mcp_events_stream", "session_id", "stream_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("rs_mcp_sessions.id", ondelete="CASCADE")
    )
    stream_id: Mapped[str] = mapped_column(String(64))
    #: The JSON-RPC message as JSON text; empty for the priming event.
    payload: Mapped[str] = mapped_column(Text, default="")
    #: True on the event that carries the response ending a POST stream.
    final: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[float] = mapped_column(Float, index=True)


class McpLegacyStream(Base):
    """One open HTTP+SSE stream (MCP 2024-11-05 transport) and the session it serves.

    ``id`` is the opaque ``session_id`` of the message endpoint's URL; the stream is bound to
    the principal that opened it (subject, client, token audience) and to one MCP server
    (``resource``), SECURITY-CASES S85.
    """

    __tablename__ = "rs_mcp_legacy_streams"
    __table_args__ = (Index("ix_rs_mcp_legacy_streams_principal", "subject", "client_id"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    session_id: Mapped[str] = mapped_column(String(64), index=True)
    subject: Mapped[str] = mapped_column(String(255))
    client_id: Mapped[str] = mapped_column(String(512))
    audience: Mapped[str] = mapped_column(String(2048))
    resource: Mapped[str] = mapped_column(String(2048))
    created_at: Mapped[float] = mapped_column(Float)
    touched_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float, index=True)


class McpPendingRequest(Base):
    """A request the server sent to the client (sampling, elicitation, roots) and its answer."""

    __tablename__ = "rs_mcp_pending_requests"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    session_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("rs_mcp_sessions.id", ondelete="CASCADE"), index=True
    )
    method: Mapped[str] = mapped_column(String(64))
    #: The JSON-RPC response (``result`` or ``error`` object) as JSON text, once it arrived.
    answer: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float, index=True)


class McpTask(Base):
    """A tools/call running as a task (MCP tasks extension, SEP-2663), bound to its principal."""

    __tablename__ = "rs_mcp_tasks"

    #: 192 bits from :mod:`secrets`: the task handle the client polls with.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    subject: Mapped[str] = mapped_column(String(255))
    client_id: Mapped[str] = mapped_column(String(512))
    tool: Mapped[str] = mapped_column(String(128))
    #: ``working``, ``input_required``, ``completed``, ``failed`` or ``cancelled``.
    status: Mapped[str] = mapped_column(String(16))
    status_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: Questions waiting for ``tasks/update``: key -> ``{"method", "params"}``.
    input_requests: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: Answers delivered by ``tasks/update`` and not yet taken by the running tool.
    input_responses: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: Every question key used so far (keys are unique over a task's lifetime).
    used_keys: Mapped[list[str]] = mapped_column(JSON, default=list)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float, index=True)


class McpBroadcast(Base):
    """One change notification for modern listeners on every worker (``subscriptions/listen``).

    ``kind`` is ``tools``, ``prompts`` or ``resources`` (a list changed), ``resource`` (the
    resource ``key`` changed) or ``task`` (the task ``key`` changed). ``subject`` and
    ``client_id``, when set, restrict delivery to that user (and client).
    """

    __tablename__ = "rs_mcp_broadcasts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    key: Mapped[str] = mapped_column(String(2048), default="")
    subject: Mapped[str | None] = mapped_column(String(255), nullable=True)
    client_id: Mapped[str | None] = mapped_column(String(512), nullable=True)
    created_at: Mapped[float] = mapped_column(Float, index=True)


class Note(Base):
    """A short note owned by one subject (the built-in notes tools)."""

    __tablename__ = "rs_notes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    subject: Mapped[str] = mapped_column(String(255), index=True)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float)


def create_tables(engine: Engine) -> None:
    """Create the resource server's tables (tests and the embedded single-process default)."""
    metadata.create_all(engine)


def sqlite_engine(path: str) -> Engine:
    """A file-backed SQLite engine in WAL mode with a busy timeout, shareable across threads."""
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 15})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=15000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return engine


class Database:
    """Runs short synchronous units of work in a worker thread, one transaction each."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def run_sync(self, work: Callable[[Session], T]) -> T:
        """Run ``work`` in a new session and commit (in the calling thread)."""
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            return work(session)

    async def run(self, work: Callable[[Session], T]) -> T:
        """Run ``work`` in a new session in a worker thread and commit."""
        return await anyio.to_thread.run_sync(self.run_sync, work)
