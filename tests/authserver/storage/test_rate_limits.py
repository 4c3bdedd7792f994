"""Shared rate-limit counters: windows, limits and concurrent first hits (S20, S48)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from authserver.context import AuthServer
from authserver.storage import rate_limits


def test_counts_within_window_and_resets_next_window(auth_server: AuthServer) -> None:
    now = 1_800_000_000
    with auth_server.database.transaction() as session:
        waits = [rate_limits.hit(session, "k", now=now, window=60, limit=2) for _ in range(3)]
    assert waits[:2] == [0, 0]
    assert 1 <= waits[2] <= 60
    with auth_server.database.transaction() as session:
        assert rate_limits.peek(session, "k", now=now, window=60, limit=2) > 0
        assert rate_limits.hit(session, "k", now=now + 60, window=60, limit=2) == 0


def test_s20_concurrent_first_hits_never_fail(auth_server: AuthServer) -> None:
    now = 1_800_000_000

    def one_hit(_: int) -> int:
        with auth_server.database.transaction() as session:
            return rate_limits.hit(session, "race", now=now, window=300, limit=100)

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(one_hit, range(24)))
    assert results == [0] * 24
    with auth_server.database.transaction() as session:
        row = session.get(rate_limits.RateCounter, "race")
        assert row is not None and row.count == 24
