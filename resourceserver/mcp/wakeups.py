"""Cross-process wake-ups over PostgreSQL ``LISTEN``/``NOTIFY`` (PostgreSQL docs, "NOTIFY").

Workers already find each other's writes by polling; on PostgreSQL they are also woken at once:
writers call :func:`announce` inside their transaction (delivered on commit), and one listener
thread per process forwards every key to the in-process :class:`~resourceserver.mcp.bus.Bus`.
On other databases both are no-ops.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence

from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from resourceserver.mcp.bus import Bus

logger = logging.getLogger(__name__)

CHANNEL = "charter_mcp"


def announce(db: Session, key: str) -> None:
    """Wake listeners in other processes once this transaction commits (PostgreSQL only)."""
    if db.get_bind().dialect.name == "postgresql":
        db.execute(select(func.pg_notify(CHANNEL, key)))


def announce_each(db: Session, keys: Sequence[str]) -> None:
    """:func:`announce` for many keys in one statement (PostgreSQL only)."""
    if keys and db.get_bind().dialect.name == "postgresql":
        db.execute(
            text("SELECT pg_notify(:channel, key) FROM unnest(CAST(:keys AS text[])) AS key"),
            {"channel": CHANNEL, "keys": list(keys)},
        )


class PgListener:
    """A daemon thread that ``LISTEN``s and forwards notifications to a :class:`Bus`."""

    def __init__(self, engine: Engine, bus: Bus, loop: asyncio.AbstractEventLoop) -> None:
        self.url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self.bus = bus
        self.loop = loop
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="mcp-pg-listener", daemon=True)

    @classmethod
    def start_for(cls, engine: Engine, bus: Bus) -> PgListener | None:
        """Start listening when ``engine`` is PostgreSQL (else None)."""
        if engine.dialect.name != "postgresql":
            return None
        listener = cls(engine, bus, asyncio.get_running_loop())
        listener.thread.start()
        return listener

    def stop(self) -> None:
        """Ask the thread to end (within a second)."""
        self.stopped.set()

    def _run(self) -> None:
        import psycopg

        backoff = 1.0
        while not self._done():
            try:
                with psycopg.connect(self.url, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    backoff = 1.0
                    while not self._done():
                        for note in conn.notifies(timeout=1.0):
                            self._forward(note.payload)
            except Exception:
                if not self._done():
                    logger.warning("PostgreSQL listener lost its connection; retrying")
                    self.stopped.wait(backoff)
                    backoff = min(backoff * 2, 30.0)

    def _done(self) -> bool:
        return self.stopped.is_set() or self.loop.is_closed()

    def _forward(self, key: str) -> None:
        try:
            self.loop.call_soon_threadsafe(self.bus.notify, key)
        except RuntimeError:  # the loop is closed: we are shutting down
            self.stopped.set()
