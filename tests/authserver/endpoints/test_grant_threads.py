"""The token endpoint's own grant threads (:mod:`authserver.endpoints.grant_threads`)."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Callable

import pytest

from authserver.context import AuthServer
from authserver.endpoints.grant_threads import POSTGRESQL_THREADS, GrantThreads

_VALUE: contextvars.ContextVar[str] = contextvars.ContextVar("grant_threads_test", default="")


@pytest.fixture
def threads(make_server: Callable[..., AuthServer]) -> GrantThreads:
    return GrantThreads(make_server().database)


async def test_returns_the_result_off_the_event_loop(threads: GrantThreads) -> None:
    loop_thread = threading.get_ident()
    try:
        ident, total = await threads.run(lambda a, b: (threading.get_ident(), a + b), 2, b=3)
    finally:
        threads.close()
    assert total == 5
    assert ident != loop_thread


async def test_raises_the_call_s_exception_in_the_caller(threads: GrantThreads) -> None:
    def fail() -> None:
        raise LookupError("no such row")

    try:
        with pytest.raises(LookupError, match="no such row"):
            await threads.run(fail)
        # The thread survives a failed call.
        assert await threads.run(lambda: "after") == "after"
    finally:
        threads.close()


async def test_the_call_sees_the_caller_s_context(threads: GrantThreads) -> None:
    _VALUE.set("request-1")
    try:
        assert await threads.run(_VALUE.get) == "request-1"
    finally:
        threads.close()


async def test_sqlite_runs_calls_one_at_a_time_in_order_postgresql_side_by_side(
    make_server: Callable[..., AuthServer],
) -> None:
    server = make_server()
    threads = GrantThreads(server.database)
    try:
        if server.database.engine.dialect.name == "sqlite":  # one grant thread
            seen: list[int] = []
            names: set[str] = set()

            def note(index: int) -> None:
                names.add(threading.current_thread().name)
                seen.append(index)

            await asyncio.gather(*(threads.run(note, index) for index in range(20)))
            assert seen == list(range(20))
            assert len(names) == 1
        else:  # several: every call waits for all the others, so only threads at once pass
            barrier = threading.Barrier(POSTGRESQL_THREADS, timeout=10)
            await asyncio.gather(*(threads.run(barrier.wait) for _ in range(POSTGRESQL_THREADS)))
    finally:
        threads.close()


async def test_a_cancelled_caller_leaves_the_thread_working(threads: GrantThreads) -> None:
    release = threading.Event()
    try:
        waiting = asyncio.ensure_future(threads.run(release.wait, 10))
        await asyncio.sleep(0.05)
        waiting.cancel()
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert await threads.run(lambda: "next") == "next"
    finally:
        threads.close()


async def test_refuses_work_once_closed(threads: GrantThreads) -> None:
    assert await threads.run(lambda: 1) == 1
    threads.close()
    with pytest.raises(RuntimeError, match="closed"):
        await threads.run(lambda: 2)


async def test_a_job_whose_caller_left_before_it_began_never_runs(
    make_server: Callable[..., AuthServer],
) -> None:
    """As an executor does: a grant nobody waits for any more does not consume its code."""
    threads = GrantThreads(make_server().database)
    release = threading.Event()
    ran: list[str] = []
    try:
        # Every thread busy (one on SQLite, POSTGRESQL_THREADS on PostgreSQL).
        busy = [
            asyncio.ensure_future(threads.run(lambda: (release.wait(10), ran.append("busy"))))
            for _ in range(POSTGRESQL_THREADS)
        ]
        await asyncio.sleep(0.05)
        queued = asyncio.ensure_future(threads.run(lambda: ran.append("cancelled")))
        await asyncio.sleep(0)
        queued.cancel()
        await asyncio.sleep(0)
        release.set()
        await asyncio.gather(*busy)
        await threads.run(lambda: ran.append("after"))  # queued later: runs
    finally:
        threads.close()
    assert queued.cancelled()
    assert ran == ["busy"] * POSTGRESQL_THREADS + ["after"]
