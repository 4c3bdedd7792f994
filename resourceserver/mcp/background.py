"""One background loop per watcher: started when the first stream needs it, again after it
ended because nothing was left to watch, and cancelled at shutdown (the shared watchers of
:mod:`resourceserver.mcp.broadcast`, :mod:`.stream_watch`, :mod:`.listen_watch` and
:mod:`.heartbeat`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any


class OnDemandTask:
    """Runs ``loop`` as a task while it has work; the loop returns when it has none."""

    def __init__(self, loop: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self._loop = loop
        #: The running (or last) task, None before the first start.
        self.task: asyncio.Task[None] | None = None

    def ensure_running(self) -> None:
        """Start the loop unless it runs (call from the event loop)."""
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._loop())

    async def aclose(self) -> None:
        """Cancel the loop and wait for it to end (shutdown)."""
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
