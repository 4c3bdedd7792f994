"""Live MCP sessions per principal are capped; the least recently used ones end first."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from resourceserver.mcp import Registry
from resourceserver.mcp.sessions import MAX_SESSIONS_PER_PRINCIPAL, SessionStore
from resourceserver.mcp.transport import TransportOptions
from resourceserver.principal import Principal
from resourceserver.storage import Database, McpEvent, McpSession
from tests.support.clock import Clock
from tests.support.mcp_harness import LOCAL_URL, McpHttp, database, local_app

PING = {"jsonrpc": "2.0", "id": 1, "method": "ping"}


def principal(subject: str = "alice", client_id: str = "c1") -> Principal:
    return Principal(
        subject=subject, client_id=client_id, scopes=frozenset(), token_id="t", expires_at=0
    )


def test_default_cap_is_one_hundred() -> None:
    assert MAX_SESSIONS_PER_PRINCIPAL == 100
    assert TransportOptions().max_sessions_per_principal == MAX_SESSIONS_PER_PRINCIPAL


async def test_new_session_over_the_cap_ends_the_least_recently_used(tmp_path: Path) -> None:
    db = Database(database(tmp_path / "rs.db"))
    clock = Clock()
    store = SessionStore(db, 3600.0, clock, max_per_principal=3)
    alice = principal()
    others = [principal("bob"), principal("alice", "c2")]
    ids = []
    for _ in range(3):
        clock.now += 120
        ids.append((await store.create(alice, "2025-11-25", {}, {})).id)
    other_ids = [(await store.create(who, "2025-11-25", {}, {})).id for who in others]
    db.run_sync(
        lambda session: session.add(
            McpEvent(session_id=ids[1], stream_id="s", payload="", created_at=clock.now)
        )
    )
    clock.now += 120
    assert await store.load(ids[0], alice) is not None  # the oldest is used again
    clock.now += 120
    newest = (await store.create(alice, "2025-11-25", {}, {})).id
    assert await store.load(ids[1], alice) is None  # least recently used: ended
    for session_id in (ids[0], ids[2], newest):
        assert await store.load(session_id, alice) is not None
    for session_id, who in zip(other_ids, others, strict=True):
        assert await store.load(session_id, who) is not None  # other principals untouched
    counts = db.run_sync(
        lambda session: (
            session.scalar(select(func.count()).select_from(McpSession)),
            session.scalar(select(func.count()).select_from(McpEvent)),
        )
    )
    assert counts == (3 + len(others), 0)


async def test_initialize_over_http_respects_the_cap(tmp_path: Path) -> None:
    cap = 2
    server = local_app(
        Registry(),
        database(tmp_path / "rs.db"),
        TransportOptions(max_sessions_per_principal=cap),
    )
    async with server.client() as client:
        sessions = []
        for _ in range(cap + 1):
            mcp = McpHttp(client, LOCAL_URL, server.token())
            await mcp.initialize()
            sessions.append(mcp)
        assert (await sessions[0].post(PING)).status_code == 404
        for mcp in sessions[1:]:
            assert (await mcp.post(PING)).status_code == 200
