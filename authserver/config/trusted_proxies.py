"""Which peers may tell ``charter serve`` the client's address (``X-Forwarded-For``).

``X-Forwarded-For`` is the de facto form of RFC 7239 §5.2 ``Forwarded: for=``: each proxy appends
the address it received the request from. uvicorn's proxy-headers middleware takes the client
address from it only when the connecting peer is listed here, walking the list from the right
to the first address that is not a trusted proxy; from any other peer the header is ignored,
so a client cannot choose the address that per-IP limits (S20, S48) count it under.
"""

from __future__ import annotations

import ipaddress

#: A reverse proxy on the same host (the usual TLS terminator), over IPv4 or IPv6.
DEFAULT_TRUSTED_PROXIES = "127.0.0.1,::1"
#: Trust every peer and every address in the header, so the client address is the header's
#: first one: safe only when nothing but the proxies reach the server and the proxy replaces the
#: header (one that appends to it passes on whatever the client sent).
TRUST_ALL = "*"


def parse_trusted_proxies(value: str) -> list[str]:
    """``"10.0.0.5, 10.1.0.0/16"`` → ``["10.0.0.5", "10.1.0.0/16"]``; ``"*"`` → ``["*"]``.

    Entries are IP addresses or networks separated by commas or spaces; an empty value trusts
    no proxy. Each IPv4 entry also trusts its IPv4-mapped IPv6 form. Raises
    :class:`ValueError` naming the entry that is neither.
    """
    entries = [part for part in value.replace(",", " ").split() if part]
    if TRUST_ALL in entries:
        if len(entries) > 1:
            raise ValueError(f"{TRUST_ALL!r} trusts every peer; give it alone or list addresses")
        return [TRUST_ALL]
    trusted: list[str] = []
    for entry in entries:
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ValueError(
                f"{entry!r} is not an IP address or network (write e.g. 10.0.0.5 or 10.0.0.0/8)"
            ) from None
        trusted.append(str(network) if "/" in entry else str(network.network_address))
        if isinstance(network, ipaddress.IPv4Network):
            # The same proxy seen through a dual-stack socket (``--host ::``) as ::ffff:a.b.c.d.
            mapped = ipaddress.IPv6Network(
                f"::ffff:{network.network_address}/{96 + network.prefixlen}"
            )
            trusted.append(str(mapped) if "/" in entry else str(mapped.network_address))
    return trusted
