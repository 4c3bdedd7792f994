"""One shared watcher per worker for ``subscriptions/listen`` streams (MCP 2026-07-28
"Subscriptions"; SECURITY-CASES S73).

A listen stream must end with ``notifications/cancelled`` soon after its token is revoked or
expires, and an idle one needs a keep-alive comment now and then. Each stream used to wake
every ``revalidate_seconds`` to check its own token and time its own keep-alives, so 1,000 idle
listeners cost 1,000 token checks a second. :class:`ListenWatch` does both for all of them in
one task: every ``revalidate_seconds`` it checks each *distinct* token once (streams opened
with the same token share one check) and wakes only the streams whose token failed; every half
keep-alive period it wakes only the streams that sent nothing for that long. An idle stream
that is neither is never woken, and has no timer of its own.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Hashable

from resourceserver.errors import InvalidTokenError
from resourceserver.mcp.background import OnDemandTask
from resourceserver.mcp.heartbeat import Beat, due_beats
from resourceserver.mcp.wake import Wake
from resourceserver.principal import Principal

logger = logging.getLogger(__name__)

Revalidate = Callable[[], Awaitable[Principal]]


class Watched(Beat):
    """One stream as the watcher sees it: what wakes it and why it was woken (``due``: a
    keep-alive, ``ended``: its token failed)."""

    __slots__ = ("ended", "group")

    def __init__(self, wake: Wake, group: _Group) -> None:
        super().__init__(wake)
        self.group = group
        #: Why the stream must end (its token failed), once it must.
        self.ended: str | None = None


class _Group:
    """The streams opened with one token, checked together."""

    __slots__ = ("expires_at", "key", "members", "revalidate")

    def __init__(self, key: Hashable, revalidate: Revalidate | None, expires_at: float) -> None:
        self.key = key
        self.revalidate = revalidate
        self.expires_at = expires_at
        self.members: set[Watched] = set()


class ListenWatch:
    """Re-checks the listeners' tokens and drives their keep-alives; one task per worker."""

    def __init__(self, revalidate_seconds: float, keepalive: float) -> None:
        self.revalidate_seconds = revalidate_seconds
        self.keepalive = keepalive
        self._groups: dict[Hashable, _Group] = {}
        self._task = OnDemandTask(self._run)
        #: Rounds of checks so far, and token checks made in them (one per distinct token).
        self.rounds = 0
        self.checks = 0

    def __len__(self) -> int:
        return sum(len(group.members) for group in self._groups.values())

    def add(self, wake: Wake, principal: Principal, revalidate: Revalidate | None) -> Watched:
        """Watch one stream until :meth:`remove`: ``wake`` is set when it must act.

        Streams are grouped by token: ``revalidate.key`` when the callable names its token
        (:class:`resourceserver.auth.Recheck`), else the callable itself (no sharing).
        """
        key: Hashable = getattr(revalidate, "key", None) or revalidate or object()
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = _Group(key, revalidate, principal.expires_at)
        watched = Watched(wake, group)
        group.members.add(watched)
        self._task.ensure_running()
        return watched

    def remove(self, watched: Watched) -> None:
        group = watched.group
        group.members.discard(watched)
        if not group.members and self._groups.get(group.key) is group:
            del self._groups[group.key]

    async def aclose(self) -> None:
        await self._task.aclose()

    async def _run(self) -> None:
        half = self.keepalive / 2
        tick = max(min(self.revalidate_seconds, half), 0.01)
        loop = asyncio.get_running_loop()
        checked_at = beat_at = loop.time()
        while self._groups:
            await asyncio.sleep(tick)
            now = loop.time()
            if now - checked_at >= self.revalidate_seconds - tick / 10:
                checked_at = now
                await self.recheck()
            if now - beat_at >= half - tick / 10:
                beat_at = now
                self.beat(half)

    async def recheck(self) -> None:
        """One round: check each distinct token once, end the streams of those that failed."""
        self.rounds += 1
        failures = 0
        for group in list(self._groups.values()):
            if not group.members:
                continue
            reason = None
            if group.expires_at <= time.time():
                reason = "the access token expired"
            elif group.revalidate is not None:
                self.checks += 1
                try:
                    await group.revalidate()
                except InvalidTokenError as exc:
                    reason = exc.description or "the access token is no longer valid"
                except Exception as exc:  # cannot tell now (key source down): keep the streams
                    failures += 1
                    if failures == 1:
                        logger.warning(
                            "cannot re-check a listener's token (%s)", type(exc).__name__
                        )
            if reason is not None:
                self._end(group, reason)

    def _end(self, group: _Group, reason: str) -> None:
        if self._groups.get(group.key) is group:
            del self._groups[group.key]
        for watched in list(group.members):
            watched.ended = reason
            watched.wake.set()

    def beat(self, quiet: float) -> None:
        """Wake the streams that sent nothing for ``quiet`` seconds: a keep-alive is due."""
        members = (watched for group in self._groups.values() for watched in group.members)
        for watched in due_beats(members, quiet):
            watched.wake.set()
