"""Keep-alive comments of idle SSE streams driven by one shared tick per worker (MCP 2025-11-25
"Transports" §Streamable HTTP; WHATWG HTML §9.2 comment lines).

A stream that sends nothing for ``period`` seconds gets a ``: keepalive`` comment so that
proxies keep its connection open. Each idle stream used to arm a timer of its own for that;
:class:`Heartbeat` is one task that, every half period, wakes only the streams that sent
nothing for at least half a period (so none stays silent longer than ``period``), without
setting their :class:`~resourceserver.mcp.wake.Wake` flag: a woken stream knows it was for a
keep-alive and does not query the event log.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

from resourceserver.mcp.background import OnDemandTask
from resourceserver.mcp.wake import Wake


class Beat:
    """One stream as the heartbeat sees it."""

    __slots__ = ("due", "sent_at", "wake")

    def __init__(self, wake: Wake) -> None:
        self.wake = wake
        #: True when a keep-alive is due (nothing sent for half the period).
        self.due = False
        #: ``time.monotonic()`` of the stream's last write.
        self.sent_at = time.monotonic()

    def sent(self) -> None:
        """Record a write on the stream (it needs no keep-alive for a while)."""
        self.sent_at = time.monotonic()
        self.due = False


def due_beats(beats: Iterable[Beat], quiet: float) -> list[Beat]:
    """The beats of ``beats`` silent for ``quiet`` seconds and not yet due; marks them due."""
    limit = time.monotonic() - quiet
    found = [beat for beat in beats if beat.sent_at <= limit and not beat.due]
    for beat in found:
        beat.due = True
    return found


class Heartbeat:
    """Wakes the quiet streams of one keep-alive ``period``; one task while any is open."""

    def __init__(self, period: float) -> None:
        self.period = period
        self._beats: set[Beat] = set()
        self._task = OnDemandTask(self._run)

    def __len__(self) -> int:
        return len(self._beats)

    def add(self, wake: Wake) -> Beat:
        """Follow one stream until :meth:`remove`."""
        beat = Beat(wake)
        self._beats.add(beat)
        self._task.ensure_running()
        return beat

    def remove(self, beat: Beat) -> None:
        self._beats.discard(beat)

    async def aclose(self) -> None:
        await self._task.aclose()

    async def _run(self) -> None:
        half = max(self.period / 2, 0.01)
        while self._beats:
            await asyncio.sleep(half)
            self.beat(half)

    def beat(self, quiet: float) -> None:
        """Wake (without setting their flag) the streams silent for ``quiet`` seconds."""
        for beat in due_beats(self._beats, quiet):
            beat.wake.kick()
