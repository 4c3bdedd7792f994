"""Batched TTL purge of expired rows (S64)."""

from __future__ import annotations

import asyncio
import base64
import sqlite3
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import event, func, select
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool

from authserver.context import AuthServer
from authserver.endpoints.app import create_app
from authserver.ops import batch_pacing
from authserver.ops.batch_pacing import BatchPacer
from authserver.ops.purge import purge_expired
from authserver.ops.purge_turn import purge_turn
from authserver.ops.purge_writer import LOCK_POLL_MS, purge_database, write_when_free
from authserver.storage.crypto import new_id
from authserver.storage.db import is_sqlite
from authserver.storage.models import (
    AccessToken,
    AuthorizationCode,
    Consent,
    Grant,
    LoginSession,
    RateCounter,
    RefreshToken,
)
from tests.support.factories import create_client
from tests.support.live import serve_app

RESOURCE = "http://127.0.0.1:8000/mcp"
MODELS = (AuthorizationCode, AccessToken, RefreshToken, Grant, Consent, LoginSession, RateCounter)


def rows_expiring_at(expires_at: int, now: int) -> list[Any]:
    """One row of every purgeable table, expiring at ``expires_at``."""
    grant_id = new_id()
    common = {"client_id": "c", "subject": "s", "scope": "mcp", "resource": RESOURCE}
    return [
        AuthorizationCode(
            code_hash=new_id(),
            redirect_uri="http://127.0.0.1/cb",
            created_at=now,
            expires_at=expires_at,
            **common,
        ),
        AccessToken(
            jti=new_id(), grant_id=grant_id, issued_at=now, expires_at=expires_at, **common
        ),
        Grant(
            id=grant_id,
            grant_type="authorization_code",
            created_at=now,
            expires_at=expires_at,
            **common,
        ),
        RefreshToken(
            token_hash=new_id(), grant_id=grant_id, issued_at=now, expires_at=expires_at, **common
        ),
        Consent(
            id=new_id(),
            user_id="u",
            client_id="c",
            scope="mcp",
            resource=RESOURCE,
            redirect_uri="http://127.0.0.1/cb",
            created_at=now,
            expires_at=expires_at,
        ),
        LoginSession(id_hash=new_id(), user_id="u", created_at=now, expires_at=expires_at),
        RateCounter(key=new_id(), window_start=now, count=1, expires_at=expires_at),
    ]


def insert(server: AuthServer, rows: list[Any]) -> None:
    with server.database.transaction() as session:
        grants = [row for row in rows if isinstance(row, Grant)]
        session.add_all(grants)
        session.flush()
        session.add_all([row for row in rows if not isinstance(row, Grant)])


def count(server: AuthServer, model: Any) -> int:
    with server.database.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_s64_purge_deletes_only_expired_rows_in_batches(auth_server: AuthServer) -> None:
    now = auth_server.now()
    for _ in range(7):
        insert(auth_server, rows_expiring_at(now - 7200, now))  # expired (codes past retention)
    insert(auth_server, rows_expiring_at(now - 10, now))  # expired; a code kept for replay checks
    insert(auth_server, rows_expiring_at(now + 3600, now))  # live
    counts = purge_expired(auth_server, batch_size=3)
    assert counts["authorization_codes"] == 7
    for name in ("access_tokens", "grants", "consents", "login_sessions", "rate_counters"):
        assert counts[name] == 8, (name, counts)
    # Refresh tokens of expired grants may go by cascade before their own turn.
    assert counts["refresh_tokens"] <= 8
    assert count(auth_server, AuthorizationCode) == 2
    for model in MODELS[1:]:
        assert count(auth_server, model) == 1, model
    assert purge_expired(auth_server) == dict.fromkeys(counts, 0)
    with pytest.raises(ValueError, match="batch_size"):
        purge_expired(auth_server, batch_size=0)


async def test_s64_purge_runs_alongside_traffic(make_server: Callable[..., AuthServer]) -> None:
    server = make_server()
    now = server.now()
    for _ in range(20):
        insert(server, [row for _ in range(10) for row in rows_expiring_at(now - 7200, now)])
    client, secret = create_client(server, confidential=True, grant_types=["client_credentials"])
    raw = base64.b64encode(f"{client.client_id}:{secret}".encode()).decode()
    with serve_app(create_app(server)) as base_url:
        async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:

            async def traffic() -> list[int]:
                statuses = []
                for _ in range(30):
                    response = await http.post(
                        "/token",
                        data={"grant_type": "client_credentials"},
                        headers={"Authorization": f"Basic {raw}"},
                    )
                    statuses.append(response.status_code)
                return statuses

            purge = run_in_threadpool(purge_expired, server, 25)
            counts, *statuses = await asyncio.gather(purge, traffic(), traffic())
    assert all(status == 200 for batch in statuses for status in batch), statuses
    assert counts["authorization_codes"] == 200
    assert counts["access_tokens"] == 200
    assert counts["grants"] == 200
    # The tokens issued during the purge are live and stay.
    assert count(server, AccessToken) == 60


def expired_tokens(server: AuthServer, count: int, expires_at: int) -> None:
    now = server.now()
    common = {"client_id": "c", "subject": "s", "scope": "mcp", "resource": RESOURCE}
    with server.database.transaction() as session:
        session.add_all(
            AccessToken(jti=new_id(), issued_at=now, expires_at=expires_at, **common)
            for _ in range(count)
        )


def test_s64_a_large_purge_runs_in_many_bounded_transactions(auth_server: AuthServer) -> None:
    now = auth_server.now()
    expired_tokens(auth_server, 300, now - 10)
    expired_tokens(auth_server, 5, now + 3600)
    pacers: list[BatchPacer] = []

    def pacer(limit: int) -> BatchPacer:
        pacers.append(BatchPacer(limit, sleep=lambda _seconds: None))
        return pacers[-1]

    commits: list[int] = []
    engine = Engine  # every engine: on SQLite the purge writes through one of its own
    listener = lambda _connection: commits.append(1)  # noqa: E731
    event.listen(engine, "commit", listener)
    try:
        counts = purge_expired(auth_server, batch_size=40, pacer=pacer)
    finally:
        event.remove(engine, "commit", listener)
    assert counts["access_tokens"] == 300
    assert count(auth_server, AccessToken) == 5
    tokens = pacers[1].transactions  # the plan's second table: access tokens
    assert sum(tokens) == 300
    assert max(tokens) <= 40  # never more rows in one transaction than the batch size
    assert len(tokens) >= 300 // 40 + 1  # several transactions, the last one short
    assert len(commits) >= len(tokens)  # each of them committed on its own


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_s64_transactions_shrink_to_the_budget_and_pauses_let_writers_go_first() -> None:
    clock = FakeClock()
    waiting = [3]  # writers of this process queued for the first polls

    def writers_waiting() -> int:
        waiting[0] = max(0, waiting[0] - 1)
        return waiting[0]

    pacer = BatchPacer(1000, writers_waiting=writers_waiting, clock=clock, sleep=clock.sleep)
    left = [5000]

    def slow_batch(rows: int, began: Callable[[], None]) -> int:
        clock.now += 1.0  # waited for the lock: not counted
        began()
        clock.now += rows * batch_pacing.TRANSACTION_BUDGET / 10  # ten rows fill the budget
        done = min(rows, left[0])
        left[0] -= done
        return done

    assert pacer.run(slow_batch) == 5000
    assert pacer.transactions[0] == batch_pacing.FIRST_BATCH
    assert all(rows <= batch_pacing.FIRST_BATCH for rows in pacer.transactions)
    assert set(pacer.transactions[1:-1]) == {batch_pacing.MIN_BATCH}
    pauses = [s for s in clock.slept if s != batch_pacing.YIELD_POLL]
    assert len(pauses) == len(pacer.transactions) - 1
    assert min(pauses) >= batch_pacing.MIN_PAUSE
    assert clock.slept.count(batch_pacing.YIELD_POLL) == 2  # waited while writers were queued


def test_s64_fast_transactions_grow_up_to_the_batch_size() -> None:
    clock = FakeClock()
    pacer = BatchPacer(300, clock=clock, sleep=clock.sleep)
    left = [3000]

    def fast_batch(rows: int, began: Callable[[], None]) -> int:
        clock.now += 0.0001
        done = min(rows, left[0])
        left[0] -= done
        return done

    assert pacer.run(fast_batch) == 3000
    assert max(pacer.transactions) == 300
    first = batch_pacing.FIRST_BATCH
    assert pacer.transactions[:3] == [first, first * 2, first * 4]
    with pytest.raises(ValueError, match="batch_size"):
        BatchPacer(0)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the one single writer
def test_s64_the_purge_polls_for_a_held_sqlite_write_lock(auth_server: AuthServer) -> None:
    assert is_sqlite(auth_server.database.engine)
    path = auth_server.database.engine.url.database
    assert path
    holder = sqlite3.connect(path.removeprefix("file:"), uri=path.startswith("file:"))
    holder.isolation_level = None
    holder.execute("BEGIN IMMEDIATE")  # another process's writer holds the lock
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 3:
            holder.execute("COMMIT")

    with purge_database(auth_server) as database:
        assert database is not auth_server.database
        rows = write_when_free(
            database,
            lambda session: int(session.scalar(select(func.count()).select_from(AccessToken)) or 0),
            sleep=sleep,
        )
    holder.close()
    assert rows == 0
    assert slept == [LOCK_POLL_MS / 1000] * 3  # it tried again until the lock was free


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # one writer per file
def test_s64_one_purge_at_a_time_the_background_one_skips_its_turn(
    auth_server: AuthServer,
) -> None:
    now = auth_server.now()
    expired_tokens(auth_server, 30, now - 10)
    waits: list[float] = []
    with purge_turn(auth_server.database.engine, wait=True) as ours:  # another purge runs
        assert ours
        skipped = purge_expired(auth_server, wait=False)
        assert set(skipped.values()) == {0}
        assert count(auth_server, AccessToken) == 30

        with purge_turn(auth_server.database.engine, wait=False) as second:
            assert not second
    with purge_turn(auth_server.database.engine, wait=True, sleep=waits.append) as free:
        assert free
    assert waits == []
    assert purge_expired(auth_server, wait=False)["access_tokens"] == 30
    assert count(auth_server, AccessToken) == 0
