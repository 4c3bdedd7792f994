"""Cheap wake-ups for long-lived streams (MCP 2025-11-25 "Transports" §Listening for Messages
from the Server; MCP 2026-07-28 "Subscriptions").

An idle SSE stream waits for one of several things: a notification of its key on the
:class:`~resourceserver.mcp.bus.Bus`, the server's shutdown, the end of its POST, a timeout
(keep-alive, token check). Waiting on several :class:`asyncio.Event` objects at once took a
task per event and :func:`asyncio.wait` per pause, and every event its own deque: a good part
of the 30-40 KB each open stream cost (bench/README.md "Streams"). Here every source sets
the stream's single :class:`Wake`, which one future and one timer handle await.
:class:`Signal` is an :class:`asyncio.Event` (shutdown, a POST stream's early close) that
also sets the wakes registered with it, so that streams need no task to watch it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator


class Wake:
    """A flag with at most one waiter: set by anyone, awaited by its stream alone."""

    __slots__ = ("_flag", "_waiter")

    def __init__(self) -> None:
        self._flag = False
        self._waiter: asyncio.Future[None] | None = None

    def set(self) -> None:
        self._flag = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def kick(self) -> None:
        """Wake the waiter without setting the flag (:mod:`resourceserver.mcp.heartbeat`: a
        keep-alive is due, there is nothing new to read)."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def clear(self) -> None:
        self._flag = False

    def is_set(self) -> bool:
        return self._flag

    async def wait(self, timeout: float | None = None) -> bool:
        """Until set or ``timeout`` seconds passed; whether it is set."""
        if self._flag:
            return True
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        timer = None if timeout is None else loop.call_later(timeout, _expire, waiter)
        self._waiter = waiter
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()
        return self._flag


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class Signal(asyncio.Event):
    """An :class:`asyncio.Event` that also sets the :class:`Wake` objects linked to it."""

    def __init__(self) -> None:
        super().__init__()
        self._wakes: set[Wake] = set()

    def set(self) -> None:
        super().set()
        for wake in list(self._wakes):
            wake.set()

    @contextlib.contextmanager
    def linked(self, wake: Wake) -> Iterator[None]:
        """Set ``wake`` when this signal is set, while the block runs (at once if it is)."""
        self.add(wake)
        try:
            yield
        finally:
            self.discard(wake)

    def add(self, wake: Wake) -> None:
        """Set ``wake`` when this signal is set (at once if it is), until :meth:`discard`."""
        self._wakes.add(wake)
        if self.is_set():
            wake.set()

    def discard(self, wake: Wake) -> None:
        self._wakes.discard(wake)


class Links:
    """``wake`` linked to several events at once (one object, not a context manager each):
    :class:`Signal` objects directly, any other event through a task that waits for it."""

    __slots__ = ("events", "relays", "wake")

    def __init__(self, wake: Wake, *events: asyncio.Event | None) -> None:
        self.wake = wake
        self.events = events
        self.relays: list[asyncio.Task[None]] = []

    def __enter__(self) -> None:
        for event in self.events:
            if isinstance(event, Signal):
                event.add(self.wake)
            elif event is not None:
                task = asyncio.get_running_loop().create_task(_relay(event, self.wake))
                self.relays.append(task)

    def __exit__(self, *_exc: object) -> None:
        for event in self.events:
            if isinstance(event, Signal):
                event.discard(self.wake)
        for task in self.relays:
            task.cancel()


async def _relay(event: asyncio.Event, wake: Wake) -> None:
    await event.wait()
    wake.set()


@contextlib.contextmanager
def linked(event: asyncio.Event | None, wake: Wake) -> Iterator[None]:
    """Set ``wake`` when ``event`` is set, while the block runs: through :meth:`Signal.linked`,
    or for a plain event through a task that waits for it."""
    if event is None:
        yield
        return
    if isinstance(event, Signal):
        with event.linked(wake):
            yield
        return

    async def relay() -> None:
        await event.wait()
        wake.set()

    task = asyncio.get_running_loop().create_task(relay())
    try:
        yield
    finally:
        task.cancel()
