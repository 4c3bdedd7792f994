"""Name resolution of the SSRF guard (S49): the resolver hook ``(host, port) -> addresses``.

Its own module, without ``httpx``: the fetch functions take a resolver as a default argument,
and importing them must not load the HTTP client before the first outbound fetch.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

#: ``(host, port) -> addresses``; the default uses :func:`socket.getaddrinfo`.
Resolver = Callable[[str, int], list[str]]


def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (TCP), in the resolver's order."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))
