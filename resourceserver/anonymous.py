"""The rate limit of anonymous MCP traffic (SECURITY-CASES S83; RFC 6585 §4 ``429``).

On a server offering public tools, requests without an ``Authorization`` header are served as
the anonymous principal. They are counted apart from signed-in traffic, per client address,
in a fixed one-minute window kept in this worker's memory (each worker counts its own share;
with N workers a client gets at most N times the limit). The table of addresses is bounded:
when it is full, the oldest windows are dropped first.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable

#: Addresses remembered at most (each holds a window start and a count).
MAX_TRACKED_ADDRESSES = 10_000
WINDOW_SECONDS = 60.0


def address_key(host: str | None) -> str:
    """The bucket of a peer address: IPv4 as is, IPv6 by its /64 (one host holds a /64)."""
    if not host:
        return "unknown"
    try:
        parsed = ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return "unparseable"
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{parsed}/64", strict=False))
    return str(parsed)


class AnonymousLimiter:
    """At most ``per_minute`` anonymous requests per client address and window (0: none)."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self._windows: OrderedDict[str, tuple[float, int]] = OrderedDict()

    def admit(self, host: str | None) -> float | None:
        """None when the request may go on, else the seconds to wait (``Retry-After``)."""
        if self.per_minute <= 0:
            return WINDOW_SECONDS
        key = address_key(host)
        now = self.clock()
        start, count = self._windows.get(key, (now, 0))
        if now - start >= WINDOW_SECONDS:
            start, count = now, 0
        if count >= self.per_minute:
            return max(1.0, math.ceil(start + WINDOW_SECONDS - now))
        self._windows[key] = (start, count + 1)
        self._windows.move_to_end(key)
        while len(self._windows) > MAX_TRACKED_ADDRESSES:
            self._windows.popitem(last=False)
        return None
