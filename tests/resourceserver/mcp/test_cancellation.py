"""Cancellations logged by other workers reach the handler, on PostgreSQL too.

PostgreSQL hands out ids before commit, so cancel rows of different sessions can become visible
out of id order. The watcher of resourceserver.mcp.cancellation keeps one cursor per session:
another session's newer row must not carry it past a cancellation still being committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, func, insert, select

from resourceserver.mcp.cancellation import (
    CANCEL_STREAM,
    SESSIONS_PER_QUERY,
    Cancellations,
    request_key,
)
from resourceserver.mcp.events import Bus, EventLog
from resourceserver.mcp.sessions import SessionStore
from resourceserver.principal import Principal
from resourceserver.storage import Database, McpEvent, create_tables, metadata, sqlite_engine

INTERVAL = 0.02
#: Generous: a loaded machine must not fail these tests; a passing run takes a few polls.
DEADLINE = 30.0

ALICE = Principal("alice", "c1", frozenset({"mcp"}), token_id="t", expires_at=2**40)


@pytest.fixture
def pg_engine(postgres_resource_url: str) -> Iterator[Engine]:
    """Fresh resource server tables on the test PostgreSQL database."""
    made = create_engine(postgres_resource_url)
    metadata.drop_all(made)
    create_tables(made)
    try:
        yield made
    finally:
        metadata.drop_all(made)
        made.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """Fresh resource server tables on a SQLite file or the test PostgreSQL database."""
    if request.param == "postgres":
        yield request.getfixturevalue("pg_engine")
        return
    made = sqlite_engine(str(tmp_path / "rs.db"))
    create_tables(made)
    try:
        yield made
    finally:
        made.dispose()


@contextlib.asynccontextmanager
async def two_workers(engine: Engine) -> AsyncIterator[tuple[Cancellations, Cancellations]]:
    """Two workers on one database: the first runs handlers, the second receives cancels."""
    database = Database(engine)
    first = Cancellations(EventLog(database, Bus()), interval=INTERVAL)
    second = Cancellations(EventLog(database, Bus()), interval=INTERVAL)
    try:
        yield first, second
    finally:
        await first.aclose()
        await second.aclose()


async def new_session(engine: Engine) -> str:
    return (await SessionStore(Database(engine), 3600).create(ALICE, "2025-11-25", {}, {})).id


async def forever() -> None:
    await asyncio.Event().wait()


def handler(worker: Cancellations, session_id: str, request_id: object) -> asyncio.Task[None]:
    """A handler that runs until cancelled, tracked by ``worker`` like the transport does."""
    task = asyncio.create_task(forever())
    worker.track(request_key(session_id, request_id), task)
    return task


async def cancelled(task: asyncio.Task[None], timeout: float = DEADLINE) -> bool:
    """True once ``task`` was cancelled; False if it still runs after ``timeout``."""
    await asyncio.wait({task}, timeout=timeout)
    return task.cancelled()


async def cancel_from(
    worker: Cancellations, session_id: str, request_id: object, task: asyncio.Task[None]
) -> bool:
    """Cancel through ``worker`` until ``task`` is cancelled (True), or the deadline passes.

    A cancellation that commits before the running worker started watching the session (right
    after the handler was tracked) concerned a request not yet known there and is ignored, as
    MCP allows; so the client's part is played by sending it again until it lands.
    """
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        await worker.cancel(session_id, request_id)
        if await cancelled(task, timeout=1.0):
            return True
    return False


async def test_cancel_logged_by_another_worker_stops_only_that_handler(engine: Engine) -> None:
    async with two_workers(engine) as (first, second):
        session_a, session_b = await new_session(engine), await new_session(engine)
        a1, a2 = handler(first, session_a, 1), handler(first, session_a, 2)
        b1 = handler(first, session_b, 1)
        assert await cancel_from(second, session_a, 1, a1)
        assert await cancel_from(second, session_b, 1, b1)
        assert not a2.done()


async def test_a_session_s_later_handler_is_cancelled_after_its_earlier_ones_ended(
    engine: Engine,
) -> None:
    async with two_workers(engine) as (first, second):
        session = await new_session(engine)
        earlier = handler(first, session, "x")
        assert await cancel_from(second, session, "x", earlier)
        # Nothing of the session runs here now; a new handler starts watching it afresh.
        assert not first.running
        later = handler(first, session, "y")
        assert await cancel_from(second, session, "y", later)


async def test_cancel_reaches_one_of_more_sessions_than_one_query_covers(engine: Engine) -> None:
    async with two_workers(engine) as (first, second):
        sessions = [await new_session(engine) for _ in range(SESSIONS_PER_QUERY + 20)]
        tasks = [handler(first, session_id, 7) for session_id in sessions]
        assert await cancel_from(second, sessions[-1], 7, tasks[-1])
        assert not any(task.done() for task in tasks[:-1])


@pytest.mark.postgres
async def test_cancel_committed_after_another_session_s_newer_row_is_seen(
    pg_engine: Engine,
) -> None:
    async with two_workers(pg_engine) as (first, second):
        session_a, session_b = await new_session(pg_engine), await new_session(pg_engine)
        # Worker 1 runs a handler of each session.
        on_a, on_b = handler(first, session_a, 1), handler(first, session_b, 1)
        # Another worker's cancel for A in flight: its row took an id but is not committed.
        with pg_engine.connect() as in_flight:
            earlier = in_flight.execute(
                insert(McpEvent)
                .values(
                    session_id=session_a,
                    stream_id=CANCEL_STREAM,
                    payload=request_key(session_a, 1)[1],
                    final=False,
                    created_at=time.time(),
                )
                .returning(McpEvent.id)
            ).scalar_one()
            # Meanwhile a cancel for B (a larger id) commits and worker 1 acts on it: it has
            # polled past that id.
            assert await cancel_from(second, session_b, 1, on_b)
            later = await Database(pg_engine).run(
                lambda db: db.scalar(
                    select(func.max(McpEvent.id)).where(
                        McpEvent.session_id == session_b, McpEvent.stream_id == CANCEL_STREAM
                    )
                )
            )
            assert later is not None and later > earlier
            assert not on_a.done()
            in_flight.commit()
        assert await cancelled(on_a), "the cancellation committed out of id order was missed"
