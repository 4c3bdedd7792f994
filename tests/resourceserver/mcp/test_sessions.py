"""Each worker caches what it read of a session for a second (the /mcp hot path), while its
own changes show at once and another worker's within the cache window."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from resourceserver.mcp.sessions import SESSION_CACHE_SECONDS, SessionStore
from resourceserver.principal import Principal
from resourceserver.storage import Database
from tests.support.clock import Clock
from tests.support.mcp_harness import database


class CountingDatabase(Database):
    """A database that counts the units of work run on it."""

    def __init__(self, engine: Any) -> None:
        super().__init__(engine)
        self.runs = 0

    def run_sync(self, work: Any) -> Any:
        self.runs += 1
        return super().run_sync(work)


def alice() -> Principal:
    return Principal(
        subject="alice", client_id="c1", scopes=frozenset(), token_id="t", expires_at=0
    )


async def test_repeated_loads_within_the_window_read_the_database_once(tmp_path: Path) -> None:
    db = CountingDatabase(database(tmp_path / "rs.db"))
    clock = Clock()
    store = SessionStore(db, 3600.0, clock)
    session = await store.create(alice(), "2025-11-25", {}, {})
    db.runs = 0
    for _ in range(20):
        assert await store.load(session.id, alice()) == session
    assert db.runs == 0
    clock.now += SESSION_CACHE_SECONDS
    assert await store.load(session.id, alice()) is not None
    assert db.runs == 1


async def test_s44_cache_never_serves_another_principal(tmp_path: Path) -> None:
    store = SessionStore(Database(database(tmp_path / "rs.db")), 3600.0, Clock())
    session = await store.create(alice(), "2025-11-25", {}, {})
    assert await store.load(session.id, alice()) is not None
    mallory = Principal(
        subject="mallory", client_id="c1", scopes=frozenset(), token_id="u", expires_at=0
    )
    assert await store.load(session.id, mallory) is None


async def test_own_changes_show_at_once_and_other_workers_within_the_window(
    tmp_path: Path,
) -> None:
    engine = database(tmp_path / "rs.db")
    clock = Clock()
    worker_a = SessionStore(Database(engine), 3600.0, clock)
    worker_b = SessionStore(Database(engine), 3600.0, clock)
    session = await worker_a.create(alice(), "2025-11-25", {}, {})
    assert (await worker_b.load(session.id, alice())) is not None  # B has it cached now

    await worker_a.update(session.id, log_level="debug")
    loaded = await worker_a.load(session.id, alice())
    assert loaded is not None and loaded.log_level == "debug"  # own change: at once

    clock.now += SESSION_CACHE_SECONDS
    loaded = await worker_b.load(session.id, alice())
    assert loaded is not None and loaded.log_level == "debug"  # the other worker: next window

    await worker_a.delete(session.id)
    assert await worker_a.load(session.id, alice()) is None
    clock.now += SESSION_CACHE_SECONDS
    assert await worker_b.load(session.id, alice()) is None


async def test_expired_session_is_not_served_from_the_cache(tmp_path: Path) -> None:
    clock = Clock()
    store = SessionStore(Database(database(tmp_path / "rs.db")), 0.5, clock)  # expires in 0.5 s
    session = await store.create(alice(), "2025-11-25", {}, {})
    assert await store.load(session.id, alice()) is not None
    clock.now += 0.6  # inside the cache window, past the session's expiry
    assert await store.load(session.id, alice()) is None
