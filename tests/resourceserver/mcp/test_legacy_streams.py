"""Open legacy HTTP+SSE streams in SQL: binding, keep-alive, and the housekeeping purge of
streams whose worker died (S85)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from authserver.context import AuthServer
from authserver.ops.purge import purge_expired
from resourceserver.mcp.legacy_streams import LegacyStreams
from resourceserver.mcp.sessions import SessionStore
from resourceserver.principal import ANONYMOUS, Principal
from resourceserver.storage import Database, McpLegacyStream, McpSession
from tests.support.clock import Clock
from tests.support.mcp_harness import database

RESOURCE = "http://127.0.0.1:8000/mcp"


def principal(subject: str = "alice", client_id: str = "c1", aud: str = RESOURCE) -> Principal:
    return Principal(
        subject=subject,
        client_id=client_id,
        scopes=frozenset({"mcp"}),
        token_id="t",
        expires_at=0,
        audience=(aud,),
    )


async def test_s85_housekeeping_purges_streams_left_by_a_dead_worker(
    auth_server: AuthServer,
) -> None:
    db = Database(auth_server.database.engine)
    clock = Clock()
    clock.now = float(auth_server.now()) - 7200
    sessions = SessionStore(db, 3600.0, clock)
    streams = LegacyStreams(db, 3600.0, clock=clock)
    alice = principal()
    stale_session = await sessions.create(alice, "2024-11-05", {}, {})
    stale = await streams.open(alice, RESOURCE, stale_session.id)
    clock.now += 7200
    live_session = await sessions.create(alice, "2024-11-05", {}, {})
    live = await streams.open(alice, RESOURCE, live_session.id)

    counts = purge_expired(auth_server)
    assert counts["mcp_legacy_streams"] == 1
    assert await streams.find(stale.id, alice, RESOURCE) is None
    assert await streams.find(live.id, alice, RESOURCE) == live
    with auth_server.database.transaction() as session:
        assert session.get(McpSession, stale_session.id) is None
        assert session.get(McpSession, live_session.id) is not None
    assert purge_expired(auth_server)["mcp_legacy_streams"] == 0


async def test_s85_a_stream_is_found_only_by_its_principal_on_its_server(tmp_path: Path) -> None:
    db = Database(database(tmp_path / "rs.db"))
    sessions = SessionStore(db, 3600.0)
    streams = LegacyStreams(db, 3600.0)
    alice = principal()
    opened = await streams.open(alice, RESOURCE, (await sessions.create(alice, "x", {}, {})).id)
    assert await streams.find(opened.id, alice, RESOURCE) == opened
    for stranger in (
        principal("bob"),
        principal(client_id="c2"),
        principal(aud="http://127.0.0.1:8000/echo/mcp"),
        ANONYMOUS,
    ):
        assert await streams.find(opened.id, stranger, RESOURCE) is None, stranger
    assert await streams.find(opened.id, alice, "http://127.0.0.1:8000/echo/mcp") is None
    assert await streams.find(opened.id + "x", alice, RESOURCE) is None
    assert await streams.find("a" * 65, alice, RESOURCE) is None
    await streams.close(opened)
    assert await streams.find(opened.id, alice, RESOURCE) is None
    assert not await streams.touch(opened)


async def test_an_idle_stream_keeps_itself_and_its_session_alive(tmp_path: Path) -> None:
    db = Database(database(tmp_path / "rs.db"))
    clock = Clock()
    sessions = SessionStore(db, 3600.0, clock)
    streams = LegacyStreams(db, 3600.0, clock=clock)
    alice = principal()
    session = await sessions.create(alice, "2024-11-05", {}, {})
    opened = await streams.open(alice, RESOURCE, session.id)
    clock.now += 3000
    assert await streams.touch(opened)
    clock.now += 3000  # past the first expiry, within the extended one
    assert await streams.find(opened.id, alice, RESOURCE) == opened
    assert await sessions.load(session.id, alice) is not None
    expiry = db.run_sync(
        lambda s: s.scalar(
            select(McpLegacyStream.expires_at).where(McpLegacyStream.id == opened.id)
        )
    )
    assert expiry is not None and expiry > clock.now
