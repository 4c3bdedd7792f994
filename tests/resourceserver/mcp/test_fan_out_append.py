"""A notification to many sessions (MCP 2025-11-25 "Resources" §Subscriptions) is logged on
each session's standalone stream in batched transactions: every live session gets exactly one
event, in its own stream, and is woken; sessions that ended are skipped. SQLite and
PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from resourceserver.mcp import events
from resourceserver.mcp.bus import Bus
from resourceserver.mcp.events import EventLog
from resourceserver.mcp.sessions import SessionStore
from resourceserver.mcp.wake import Wake
from resourceserver.principal import Principal
from resourceserver.storage import Database
from tests.resourceserver.mcp.test_tasks import engine_for


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    # PostgreSQL: a database of its own (the migrated session database must not get the
    # resource tables made outside its migrations).
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'charter.db'}"
    else:
        url = request.getfixturevalue("postgres_resource_url")
    engine = engine_for(url)
    yield Database(engine)
    engine.dispose()


def principal(subject: str) -> Principal:
    return Principal(
        subject=subject, client_id="c1", scopes=frozenset(), token_id="t", expires_at=0
    )


async def test_each_live_session_gets_one_event_and_is_woken(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(events, "FAN_OUT_CHUNK", 4)
    bus = Bus()
    log = EventLog(db, bus)
    store = SessionStore(db, 3600.0)
    count = 4 + 3  # more than one transaction
    ids = [(await store.create(principal(f"u{i}"), "2025-11-25", {}, {})).id for i in range(count)]
    gone = ids.pop()
    await store.delete(gone)
    wakes = {session_id: Wake() for session_id in ids[:3]}
    for session_id, wake in wakes.items():
        bus.add(log.key(session_id, "standalone"), wake)

    stored = await log.append_to_each([*ids, gone, ids[0]], "standalone", '{"m":1}')

    assert stored == len(ids)
    assert all(wake.is_set() for wake in wakes.values())
    for session_id in (ids[0], ids[4], ids[-1]):
        logged = await log.after(session_id, "standalone", 0)
        assert [event.payload for event in logged] == ['{"m":1}']
        assert await log.after(session_id, "other", 0) == []
    assert await log.poll(gone, "standalone", 0) is None
