"""Budgets of the outbound client ID metadata document fetches (S96;
draft-ietf-oauth-client-id-metadata-document §6.5 "Server-Side Request Forgery" and §6.6
"Denial of Service": a server fetching documents on unauthenticated requests bounds them).

Checked in this order, each before anything is sent out (and before the database is asked
whether to fetch), after a positive hint: a URL whose row this process saw fresh (or
registered, never fetched) is neither planned nor fetched until the row expires, for at most
:data:`FRESH_HINT_SECONDS` (the endpoint still reads the row itself).

1. A **negative cache**: a URL whose fetch failed, and the host of a fetch that timed out or
   could not connect, are not fetched again for ``metadata_fetch_failure_ttl`` seconds (the
   request then sees an unknown client at once instead of waiting for the same slow host).
2. A **per-client-IP limit** (IPv6: per /64): at most :data:`FETCHES_IN_FLIGHT_PER_IP` fetches
   in flight and ``metadata_fetches_per_ip_per_minute`` fetches started per minute; past it
   the request is answered 429 with ``Retry-After`` (``slow_down`` at the token endpoint, the
   "too many requests" page at the authorization endpoint), as this server's other per-IP
   limits are. The address is :func:`authserver.endpoints.client_address.client_ip`
   (``X-Forwarded-For`` from trusted proxies only).
3. A **per-host** limit of :data:`FETCHES_IN_FLIGHT_PER_HOST` fetches in flight (many URLs
   under one slow host wait on nobody: past it the fetch is refused at once), on top of the
   per-host rate of new documents kept in the database (``FETCHES_PER_HOST_PER_MINUTE``).
4. A **global** budget of ``metadata_fetch_concurrency`` fetches in flight: a fetch waits for
   a slot at most :data:`QUEUE_SECONDS`, then is refused (fail fast). Many host names cannot
   defeat it.

A refused fetch leaves the client unknown (a stale cached row is still served within its
grace), except past the per-IP limit, which answers 429.

Every budget lives in memory and is **per process**: with ``--workers N`` each worker has its
own (so the global budget is N times the setting). That is enough for the purpose — no
worker's own requests wait on another worker's fetches, and the fetches themselves never hold
a worker thread (they are awaited on the event loop, :mod:`authserver.clients.ssrf.async_fetch`).
Everything runs on the event loop, before the endpoint's blocking work; the tables are
guarded by one lock all the same (cheap, and safe should a worker thread ever ask). Tables
are bounded (:data:`MAX_ENTRIES`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import threading
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from authserver.config.settings import CharterSettings

#: Fetches one client IP may have in flight at once.
FETCHES_IN_FLIGHT_PER_IP = 2
#: Fetches one document host may have in flight at once (per process).
FETCHES_IN_FLIGHT_PER_HOST = 2
#: Longest wait for a slot of the global budget before the fetch is refused, seconds.
QUEUE_SECONDS = 0.25
#: Longest time a row seen fresh is trusted without asking the database whether to fetch.
FRESH_HINT_SECONDS = 60
#: How often a fetch waiting for a global slot looks again, seconds.
POLL_SECONDS = 0.01
#: Most entries kept in each negative cache and in the per-IP table.
MAX_ENTRIES = 10_000


class FetchBudgetExhausted(Exception):
    """No slot for another fetch now (per host or in all); ``str(error)`` is safe to log."""


def ip_bucket(ip: str) -> str:
    """The per-IP counter of ``ip``: IPv6 addresses share one per /64."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip[:128]
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


@dataclass
class IpTicket:
    """One admitted fetch of a client IP: release it when the fetch ends; refund it when no
    fetch was made after all (it then does not count in the minute)."""

    limits: FetchLimits
    bucket: str
    started: float
    released: bool = False

    def release(self, *, refund: bool = False) -> None:
        """End the fetch (idempotent); ``refund`` also forgets its start."""
        if self.released:
            return
        self.released = True
        self.limits.end_ip_fetch(self, refund=refund)


@dataclass
class FetchLimits:
    """The per-process budgets of metadata document fetches (see the module docstring)."""

    per_ip_per_minute: int = 10
    concurrency: int = 8
    failure_ttl: int = 60
    per_ip_in_flight: int = FETCHES_IN_FLIGHT_PER_IP
    per_host_in_flight: int = FETCHES_IN_FLIGHT_PER_HOST
    queue_seconds: float = QUEUE_SECONDS
    #: The server's clock (Unix time) for the minute windows, the TTLs and the fresh hint.
    clock: Callable[[], float] = time.time
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _ip_in_flight: Counter[str] = field(default_factory=Counter, repr=False)
    _ip_started: dict[str, deque[float]] = field(default_factory=dict, repr=False)
    _host_in_flight: Counter[str] = field(default_factory=Counter, repr=False)
    _failed_urls: dict[str, float] = field(default_factory=dict, repr=False)
    _fresh_until: dict[str, float] = field(default_factory=dict, repr=False)
    _failed_hosts: dict[str, float] = field(default_factory=dict, repr=False)
    _in_flight: int = 0

    @classmethod
    def from_settings(
        cls, settings: CharterSettings, clock: Callable[[], float] = time.time
    ) -> FetchLimits:
        """The budgets a deployment's settings give, on the server's clock."""
        return cls(
            per_ip_per_minute=settings.metadata_fetches_per_ip_per_minute,
            concurrency=settings.metadata_fetch_concurrency,
            failure_ttl=settings.metadata_fetch_failure_ttl,
            clock=clock,
        )

    # Positive hint (the cache itself is the database row) ------------------------------------

    def known_fresh(self, url: str, now: int) -> bool:
        """True while this process saw ``url``'s cached row fresh (no fetch, no plan needed;
        the endpoint still reads the row, so a disabled or deleted client stays refused)."""
        with self._lock:
            return self._fresh_until.get(url, 0) > now

    def remember_fresh(self, url: str, until: int) -> None:
        """``url``'s cached row is fresh until ``until`` (Unix time); remembered for at most
        :data:`FRESH_HINT_SECONDS` (a row deleted meanwhile is fetched again after that)."""
        now = self.clock()
        with self._lock:
            _remember(self._fresh_until, url, min(float(until), now + FRESH_HINT_SECONDS), now)

    # Negative cache -------------------------------------------------------------------------

    def failed_recently(self, url: str, host: str) -> bool:
        """True while ``url`` or its ``host`` is remembered as failing."""
        now = self.clock()
        with self._lock:
            return any(
                now < expires
                for expires in (self._failed_urls.get(url, 0.0), self._failed_hosts.get(host, 0.0))
            )

    def remember_failure(self, url: str, host: str | None = None) -> None:
        """Do not fetch ``url`` (and, when given, anything on ``host``) for the failure TTL."""
        if self.failure_ttl <= 0:
            return
        expires = self.clock() + self.failure_ttl
        with self._lock:
            _remember(self._failed_urls, url, expires, self.clock())
            if host is not None:
                _remember(self._failed_hosts, host, expires, self.clock())

    # Per client IP ----------------------------------------------------------------------------

    def admit_ip(self, ip: str) -> IpTicket | int:
        """Admit one more fetch for ``ip`` (a ticket), or the seconds to wait when over."""
        bucket = ip_bucket(ip)
        now = self.clock()
        with self._lock:
            started = self._ip_started.get(bucket)
            if started is None:
                if len(self._ip_started) >= MAX_ENTRIES:
                    self._prune_ips(now)
                started = self._ip_started[bucket] = deque()
            while started and started[0] <= now - 60:
                started.popleft()
            if self._ip_in_flight[bucket] >= self.per_ip_in_flight:
                return 1
            if len(started) >= self.per_ip_per_minute:
                return max(1, math.ceil(started[0] + 60 - now))
            started.append(now)
            self._ip_in_flight[bucket] += 1
        return IpTicket(self, bucket, now)

    def end_ip_fetch(self, ticket: IpTicket, *, refund: bool) -> None:
        """Called by :meth:`IpTicket.release`."""
        with self._lock:
            self._ip_in_flight[ticket.bucket] -= 1
            if self._ip_in_flight[ticket.bucket] <= 0:
                del self._ip_in_flight[ticket.bucket]
            started = self._ip_started.get(ticket.bucket)
            if refund and started is not None and ticket.started in started:
                started.remove(ticket.started)

    def _prune_ips(self, now: float) -> None:
        for bucket in [
            key for key, times in self._ip_started.items() if not times or times[-1] <= now - 60
        ]:
            if bucket not in self._ip_in_flight:
                del self._ip_started[bucket]

    # Per host and in all (event loop only) ----------------------------------------------------

    @asynccontextmanager
    async def outbound(self, host: str) -> AsyncIterator[None]:
        """Hold a slot of ``host``'s and of the global budget for one fetch; raises
        :class:`FetchBudgetExhausted` when the host is busy or no global slot frees in time."""
        with self._lock:
            if self._host_in_flight[host] >= self.per_host_in_flight:
                raise FetchBudgetExhausted("too many fetches in flight for this host")
            self._host_in_flight[host] += 1
        try:
            await self._take_slot()
            try:
                yield
            finally:
                self._give_slot()
        finally:
            with self._lock:
                self._host_in_flight[host] -= 1
                if self._host_in_flight[host] <= 0:
                    del self._host_in_flight[host]

    async def _take_slot(self) -> None:
        """A global slot, waiting at most :attr:`queue_seconds` (polled: the budget is shared
        by any event loop of the process and binds to none)."""
        deadline = time.monotonic() + self.queue_seconds
        while True:
            with self._lock:
                if self._in_flight < self.concurrency:
                    self._in_flight += 1
                    return
            if time.monotonic() >= deadline:
                raise FetchBudgetExhausted("too many metadata document fetches in flight")
            await asyncio.sleep(POLL_SECONDS)

    def _give_slot(self) -> None:
        with self._lock:
            self._in_flight -= 1

    @property
    def in_flight(self) -> int:
        """Fetches holding a global slot now."""
        return self._in_flight


def _remember(table: dict[str, float], key: str, expires: float, now: float) -> None:
    """Set ``table[key] = expires``, keeping the table at most :data:`MAX_ENTRIES` long."""
    if key not in table and len(table) >= MAX_ENTRIES:
        for stale in [name for name, until in table.items() if until <= now]:
            del table[stale]
        while len(table) >= MAX_ENTRIES:
            del table[next(iter(table))]
    table.pop(key, None)
    table[key] = expires
