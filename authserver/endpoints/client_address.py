"""The address of the party making a request, as rate limits and the audit trail record it.

Behind a trusted proxy, uvicorn's proxy-headers middleware (``charter serve
--forwarded-allow-ips``) replaces the peer with the address the proxy forwarded in
``X-Forwarded-For``; it does not check that the forwarded value is an address. A value that is
not one (a misconfigured proxy, or any local process under the default loopback trust) must
neither reach the database as an arbitrary long string (the audit column holds 64 characters,
rate-limit keys are bounded) nor give its sender a fresh rate-limit bucket per value: every such
value shares the one bucket :data:`UNPARSEABLE`.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from starlette.requests import Request

#: The address recorded when there is no peer (e.g. a Unix socket).
UNKNOWN = "unknown"
#: The address recorded for every forwarded value that is not an IP address.
UNPARSEABLE = "unparseable"


@lru_cache(maxsize=4096)
def normalized_ip(host: str) -> str:
    """``host`` as a canonical IP address (IPv6 compressed, zone dropped, IPv4-mapped IPv6 as
    IPv4), else UNPARSEABLE."""
    address, _, _zone = host.strip().partition("%")
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return UNPARSEABLE
    # An IPv4 client seen through a dual-stack socket (``--host ::``) or a proxy that forwards
    # ``::ffff:a.b.c.d``: counted as the IPv4 address it is, not in one shared IPv6 /64.
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        return str(parsed.ipv4_mapped)
    return str(parsed)


def client_ip(request: Request) -> str:
    """The client's address for limits and the audit trail (see the module docstring)."""
    if request.client is None or not request.client.host:
        return UNKNOWN
    return normalized_ip(request.client.host)
