"""The worker threads that run token grants (RFC 6749 §3.2), apart from the shared pool.

A grant's work is blocking database I/O, run off the event loop. Through Starlette's
``run_in_threadpool`` (anyio's pool and capacity limiter) each hop costs about three times
what a plain :class:`~concurrent.futures.ThreadPoolExecutor` hop does, and on SQLite every
grant thread but one then waits on the database's single write lock
(:meth:`authserver.storage.db.Database.transaction`), waking and sleeping in turn. So the token
endpoint has threads of its own: one for SQLite (grants queue in order instead of on the
lock), :data:`POSTGRESQL_THREADS` for PostgreSQL (grants of different clients run at once).

The caller's context variables (request id, client address: the audit trail's, S92) go with
each call, as with ``run_in_threadpool``.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import ParamSpec, TypeVar

from authserver.storage.db import Database, is_sqlite

#: Grant threads on PostgreSQL (each holds one pooled connection while it runs).
POSTGRESQL_THREADS = 8

_P = ParamSpec("_P")
_R = TypeVar("_R")


class GrantThreads:
    """Threads for the blocking part of token requests on one database (made on first use)."""

    def __init__(self, database: Database) -> None:
        workers = 1 if is_sqlite(database.engine) else POSTGRESQL_THREADS
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="charter-grant")

    async def run(self, func: Callable[_P, _R], *args: _P.args, **kwargs: _P.kwargs) -> _R:
        """``func(*args, **kwargs)`` in one of the threads, with the caller's context."""
        context = contextvars.copy_context()
        call = partial(context.run, func, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    def close(self) -> None:
        """Let the threads end once their work is done (no new work after this)."""
        self._executor.shutdown(wait=False)
