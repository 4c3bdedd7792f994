"""Batched TTL purge of expired rows (S64): codes, access-token rows, refresh tokens, grants,
consents, login sessions, rate counters, and audit events past ``audit_retention_seconds``;
also the MCP server's legacy HTTP+SSE streams left behind by a worker that died, with their
sessions (:func:`resourceserver.mcp.legacy_streams.purge_expired_streams`).

Each batch is its own short transaction (``DELETE … WHERE rowid IN (SELECT rowid … WHERE
expires_at < :cutoff LIMIT :rows)``, the primary key on PostgreSQL), sized to a few
milliseconds and spaced by :class:`authserver.ops.batch_pacing.BatchPacer`, so the purge runs
alongside traffic without holding SQLite's write lock for long and lets waiting writers go
first. Used by ``charter tokens purge`` and the maintenance loop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Delete, bindparam, delete, literal_column, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import ColumnClause

from authserver.context import AuthServer
from authserver.ops.batch_pacing import (
    PAUSE_RATIO,
    POSTGRESQL_PAUSE_RATIO,
    POSTGRESQL_TRANSACTION_BUDGET,
    TRANSACTION_BUDGET,
    BatchPacer,
)
from authserver.ops.purge_turn import purge_turn
from authserver.ops.purge_writer import purge_database, write_when_free
from authserver.storage.db import Database, is_sqlite
from authserver.storage.models import (
    AccessToken,
    AuditEvent,
    AuthorizationCode,
    Consent,
    Grant,
    LoginSession,
    RateCounter,
    RefreshToken,
    UpstreamLogin,
)
from resourceserver.mcp.legacy_streams import purge_expired_streams

#: Consumed or expired codes are kept this long past expiry so that a late replay is still
#: recognised and revokes its grant (RFC 9700 §4.5, S15).
DEFAULT_CODE_RETENTION = 3600


def _batch_delete(server: AuthServer, key: Any, expires_at: Any, cutoff: int) -> Delete:
    """One batch of expired rows (``LIMIT :rows``), found through the expiry index: by rowid on
    SQLite (the table's own b-tree, no lookup of the primary-key index per row), by primary key
    on PostgreSQL."""
    table = key.class_.__table__
    if is_sqlite(server.database.engine):
        rowid: ColumnClause[Any] = literal_column("rowid")
        chosen = select(rowid).select_from(table).where(expires_at < cutoff)
        return delete(table).where(rowid.in_(chosen.limit(bindparam("rows"))))
    chosen = select(key).where(expires_at < cutoff)
    return delete(table).where(key.in_(chosen.limit(bindparam("rows"))))


def _purge_table(
    server: AuthServer,
    database: Database,
    key: Any,
    expires_at: Any,
    cutoff: int,
    pacer: BatchPacer,
) -> int:
    statement = _batch_delete(server, key, expires_at, cutoff)

    def one_batch(rows: int, began: Callable[[], None]) -> int:
        def work(session: Session) -> int:
            began()  # the write lock is ours from here
            result = session.execute(statement, {"rows": rows})
            return int(getattr(result, "rowcount", 0) or 0)

        return write_when_free(database, work)

    return pacer.run(one_batch, _checkpoint_after(database))


#: Rows deleted between two checkpoints of the purging process: about 100 rows dirty some 700
#: pages (fewer than the 1,000 WAL frames of SQLite's automatic checkpoint).
CHECKPOINT_ROWS = 100


def _checkpoint_after(database: Database) -> Callable[[int], None] | None:
    """On SQLite, a passive WAL checkpoint every :data:`CHECKPOINT_ROWS` rows, from the purging
    process.

    Every row deleted dirties a page of the table and of each index (seven for access tokens),
    so a batch writes hundreds of WAL frames. Left alone, the automatic checkpoint (at 1,000
    frames) falls on whichever connection commits next: usually the serving process's token
    endpoint, which would then copy the purge's pages into the database file (and sync it)
    inside a request. A passive checkpoint takes no write lock and never waits."""
    if not is_sqlite(database.engine):
        return None

    pending = [0]

    def checkpoint(rows: int) -> None:
        pending[0] += rows
        if pending[0] < CHECKPOINT_ROWS:
            return
        pending[0] = 0
        raw = database.engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")
            cursor.fetchall()
            cursor.close()
        finally:
            raw.close()

    return checkpoint


def purge_expired(
    server: AuthServer,
    batch_size: int = 1000,
    *,
    code_retention: int = DEFAULT_CODE_RETENTION,
    pacer: Callable[[int], BatchPacer] | None = None,
    wait: bool = True,
) -> dict[str, int]:
    """Delete expired rows of every authorization-server table; counts per table.

    ``batch_size`` bounds the rows of one transaction; each table's transactions are sized and
    spaced by a :class:`BatchPacer` (``pacer(batch_size)``, by default one yielding to this
    process's queued writers). On SQLite one purge runs at a time
    (:func:`authserver.ops.purge_turn.purge_turn`): while another holds the file, this one
    waits for it, or with ``wait=False`` deletes nothing (every count 0)."""
    if batch_size < 1:
        raise ValueError("batch_size must be positive")
    sqlite = is_sqlite(server.database.engine)
    budget = TRANSACTION_BUDGET if sqlite else POSTGRESQL_TRANSACTION_BUDGET
    ratio = PAUSE_RATIO if sqlite else POSTGRESQL_PAUSE_RATIO
    make_pacer = pacer or (
        lambda limit: BatchPacer(
            limit, writers_waiting=server.database.writers_waiting, budget=budget, pause_ratio=ratio
        )
    )
    now = server.now()
    plan: list[tuple[str, Any, Any, int]] = [
        (
            "authorization_codes",
            AuthorizationCode.code_hash,
            AuthorizationCode.expires_at,
            now - code_retention,
        ),
        ("access_tokens", AccessToken.jti, AccessToken.expires_at, now),
        ("refresh_tokens", RefreshToken.token_hash, RefreshToken.expires_at, now),
        ("grants", Grant.id, Grant.expires_at, now),
        ("consents", Consent.id, Consent.expires_at, now),
        ("login_sessions", LoginSession.id_hash, LoginSession.expires_at, now),
        ("rate_counters", RateCounter.key, RateCounter.expires_at, now),
        ("upstream_logins", UpstreamLogin.state_hash, UpstreamLogin.expires_at, now),
    ]
    retention = server.settings.audit_retention_seconds
    if retention > 0:
        plan.append(("audit_events", AuditEvent.id, AuditEvent.at, now - retention))
    with purge_turn(server.database.engine, wait=wait) as ours:
        if not ours:
            return {**dict.fromkeys((name for name, *_ in plan), 0), "mcp_legacy_streams": 0}
        return _purge_all(server, plan, make_pacer, batch_size)


def _purge_all(
    server: AuthServer,
    plan: list[tuple[str, Any, Any, int]],
    make_pacer: Callable[[int], BatchPacer],
    batch_size: int,
) -> dict[str, int]:
    with purge_database(server) as database:
        counts = {
            name: _purge_table(server, database, key, expires_at, cutoff, make_pacer(batch_size))
            for name, key, expires_at, cutoff in plan
        }
        counts["mcp_legacy_streams"] = _purge_legacy_streams(
            server, database, make_pacer(batch_size)
        )
    return counts


def _purge_legacy_streams(server: AuthServer, database: Database, pacer: BatchPacer) -> int:
    def one_batch(rows: int, began: Callable[[], None]) -> int:
        def work(session: Session) -> int:
            began()
            return purge_expired_streams(session, server.now(), rows)

        return write_when_free(database, work)

    return pacer.run(one_batch, _checkpoint_after(database))
