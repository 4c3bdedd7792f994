"""Fixed-window counters in SQL, shared by every worker (S20 throttling, S48 registration limit)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from authserver.storage.models import RateCounter


def _insert_if_absent(session: Session, values: dict[str, Any]) -> None:
    """Create the counter row unless another request just did (no unique-key error)."""
    # The one dialect in use, imported here: importing both would load PostgreSQL's dialect
    # (every driver's module) into a SQLite worker.
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        session.execute(pg_insert(RateCounter).values(**values).on_conflict_do_nothing())
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        session.execute(sqlite_insert(RateCounter).values(**values).on_conflict_do_nothing())


def hit(session: Session, key: str, *, now: int, window: int, limit: int) -> int:
    """Count one event for ``key``; return seconds to wait when over ``limit``, else 0."""
    window_start = now - now % window
    _insert_if_absent(
        session,
        {"key": key, "window_start": window_start, "count": 0, "expires_at": window_start + window},
    )
    row = session.scalars(
        select(RateCounter)
        .where(RateCounter.key == key)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    if row.window_start != window_start:
        row.window_start = window_start
        row.count = 0
        row.expires_at = window_start + window
    row.count += 1
    session.flush()
    if row.count > limit:
        return max(1, window_start + window - now)
    return 0


def peek(session: Session, key: str, *, now: int, window: int, limit: int) -> int:
    """Seconds to wait when ``key`` is already over ``limit`` in this window, else 0."""
    window_start = now - now % window
    row = session.get(RateCounter, key)
    if row is None or row.window_start != window_start or row.count < limit:
        return 0
    return max(1, window_start + window - now)


def reset(session: Session, key: str) -> None:
    """Forget the counter (e.g. after a successful login)."""
    row = session.get(RateCounter, key)
    if row is not None:
        session.delete(row)
