"""Slow client ID metadata document hosts for the S96 tests: a loopback TCP server that accepts
every connection and never answers (until released), and a fake DNS for a ``charter serve``
subprocess that maps every ``*.attacker.example`` name to 127.0.0.1.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

#: Names under this suffix resolve to 127.0.0.1 once :func:`install_fake_dns` ran.
ATTACKER_SUFFIX = ".attacker.example"


@dataclass
class SlowHost:
    """A listening socket on 127.0.0.1 that holds every connection without answering."""

    port: int
    accepted: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    release: threading.Event = field(default_factory=threading.Event)
    first: threading.Event = field(default_factory=threading.Event)

    def count(self) -> int:
        """Connections accepted so far."""
        with self.lock:
            return self.accepted


@contextmanager
def slow_host() -> Iterator[SlowHost]:
    """A :class:`SlowHost` on a free port; its connections are closed when the block ends."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(512)
    listener.settimeout(0.05)
    host = SlowHost(port=int(listener.getsockname()[1]))
    held: list[socket.socket] = []

    def run() -> None:
        while not host.release.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            held.append(conn)
            with host.lock:
                host.accepted += 1
            host.first.set()

    thread = threading.Thread(target=run, name="slow-document-host", daemon=True)
    thread.start()
    try:
        yield host
    finally:
        host.release.set()
        thread.join(5)
        for conn in held:
            conn.close()
        listener.close()


def install_fake_dns() -> None:
    """Make ``socket.getaddrinfo`` answer 127.0.0.1 for every ``*.attacker.example`` name
    (run first thing in a ``charter serve`` subprocess; every other name resolves as usual)."""
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host.lower().rstrip(".").endswith(ATTACKER_SUFFIX):
            return real("127.0.0.1", port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    socket.getaddrinfo = getaddrinfo
