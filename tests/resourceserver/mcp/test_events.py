"""A session's events commit in id order (resourceserver.mcp.events), on PostgreSQL too.

PostgreSQL hands out ids before commit: without the per-session lock an event with a larger id
could become visible before one with a smaller id, and a stream that read past the larger id
would never send the smaller one (or would send it after a newer connection's claim).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine, insert, text

from resourceserver.mcp.events import Bus, EventLog
from resourceserver.mcp.sessions import SessionStore
from resourceserver.principal import Principal
from resourceserver.storage import Database, McpEvent, create_tables, metadata


@pytest.fixture
def pg_engine(postgres_resource_url: str) -> Iterator[Engine]:
    engine = create_engine(postgres_resource_url)
    metadata.drop_all(engine)
    create_tables(engine)
    try:
        yield engine
    finally:
        metadata.drop_all(engine)
        engine.dispose()


def waiting_on_a_lock(engine: Engine) -> bool:
    """True when some other backend of this database waits for a lock."""
    with engine.connect() as conn:
        found = conn.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
            )
        ).scalar_one()
    return bool(found)


@pytest.mark.postgres
async def test_an_append_waits_for_the_session_s_append_in_flight(pg_engine: Engine) -> None:
    database = Database(pg_engine)
    log = EventLog(database, Bus())
    principal = Principal("alice", "c1", frozenset({"mcp"}), token_id="t", expires_at=2**40)
    session = await SessionStore(database, 3600).create(principal, "2025-11-25", {}, {})

    # Another worker's append in flight: its row has an id (and, through the foreign key, a
    # share lock on the session's row) but is not committed yet.
    with pg_engine.connect() as in_flight:
        earlier = in_flight.execute(
            insert(McpEvent)
            .values(session_id=session.id, stream_id="s", payload="{}", final=False, created_at=0)
            .returning(McpEvent.id)
        ).scalar_one()
        later = asyncio.create_task(log.append(session.id, "s", "{}", final=False))
        deadline = time.monotonic() + 30
        while not later.done() and not await asyncio.to_thread(waiting_on_a_lock, pg_engine):
            assert time.monotonic() < deadline, "the append neither waited nor finished"
            await asyncio.sleep(0.02)
        assert not later.done(), "the append committed before the earlier one in flight"
        in_flight.commit()
    later_id = int((await later).rpartition(".")[2])
    assert later_id > earlier
    assert [e.row for e in await log.after(session.id, "s", 0)] == [earlier, later_id]
