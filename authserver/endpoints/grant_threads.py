"""The worker threads that run token grants (RFC 6749 §3.2), apart from the shared pool.

A grant's work is blocking database I/O, run off the event loop. Through Starlette's
``run_in_threadpool`` (anyio's pool and capacity limiter) each hop costs about three times
what a plain :class:`~concurrent.futures.ThreadPoolExecutor` hop does, and on SQLite every
grant thread but one then waits on the database's single write lock
(:meth:`authserver.storage.db.Database.transaction`), waking and sleeping in turn. So the token
endpoint has threads of its own: one for SQLite (grants queue in order instead of on the
lock), :data:`POSTGRESQL_THREADS` for PostgreSQL (grants of different clients run at once).

Even ``loop.run_in_executor`` costs the event loop more than the grant's own statements do:
its :class:`concurrent.futures.Future` takes a lock for every state read, and the result is
copied into an asyncio future through a chain of callbacks. Here a call is one item on a
:class:`queue.SimpleQueue`; the thread that runs it hands the outcome straight to the
caller's asyncio future with one ``call_soon_threadsafe``.

The caller's context variables (request id, client address: the audit trail's, S92) go with
each call, as with ``run_in_threadpool``.
"""

from __future__ import annotations

import asyncio
import contextvars
import queue
import threading
from collections.abc import Callable
from functools import partial
from typing import Any, ParamSpec, TypeVar

from authserver.storage.db import Database, is_sqlite

#: Grant threads on PostgreSQL (each holds one pooled connection while it runs).
POSTGRESQL_THREADS = 8

_P = ParamSpec("_P")
_R = TypeVar("_R")

#: One call: where to answer, the caller's context, and the call itself.
_Job = tuple[
    asyncio.AbstractEventLoop, "asyncio.Future[Any]", contextvars.Context, Callable[[], Any]
]


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    """Give ``future`` its outcome (on its loop), unless its caller stopped waiting."""
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class GrantThreads:
    """Threads for the blocking part of token requests on one database (made on first use)."""

    def __init__(self, database: Database) -> None:
        self._size = 1 if is_sqlite(database.engine) else POSTGRESQL_THREADS
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._guard = threading.Lock()
        self._closed = False

    async def run(self, func: Callable[_P, _R], *args: _P.args, **kwargs: _P.kwargs) -> _R:
        """``func(*args, **kwargs)`` in one of the threads, with the caller's context."""
        if len(self._threads) < self._size:
            self._start()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_R] = loop.create_future()
        job = (loop, future, contextvars.copy_context(), partial(func, *args, **kwargs))
        with self._guard:  # never behind the stop markers of close()
            if self._closed:
                raise RuntimeError("the grant threads are closed")
            self._jobs.put(job)
        del job
        return await future

    def _start(self) -> None:
        with self._guard:
            if self._closed:
                raise RuntimeError("the grant threads are closed")
            while len(self._threads) < self._size:
                # Daemon threads: one waiting for work must not hold up the interpreter's exit
                # (the server lets requests in flight finish before it stops, S65).
                thread = threading.Thread(
                    target=self._work,
                    name=f"charter-grant-{len(self._threads)}",
                    daemon=True,
                )
                thread.start()
                self._threads.append(thread)

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            loop, future, context, call = job
            if future.cancelled():  # its caller stopped waiting before it began: skip it
                del job, loop, future, context, call
                continue
            result: Any = None
            error: BaseException | None = None
            try:
                result = context.run(call)
            except BaseException as exc:  # handed to the caller, as an executor does
                error = exc
            try:
                loop.call_soon_threadsafe(_settle, future, result, error)
            except RuntimeError:  # the loop is closed: nobody waits any more
                pass
            # Nothing of the last request (its form: secrets, codes) stays with an idle thread.
            del job, loop, future, context, call, result, error

    def close(self) -> None:
        """Let the threads end once their work is done (no new work after this)."""
        with self._guard:
            self._closed = True
            for _ in self._threads:
                self._jobs.put(None)
