"""What the SSRF guard lets through (S49): the policy of a deployment, the rules on a URL
before anything is resolved, and which addresses count as public (RFC 6890 special-purpose
registries; IPv4-mapped, NAT64, 6to4 and Teredo forms embedding non-public IPv4 addresses).
Errors of every outbound fetch are defined here too.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from authserver.config.settings import CharterSettings

if TYPE_CHECKING:
    import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

DEFAULT_TIMEOUT_SECONDS = 5.0
DEFAULT_MAX_BYTES = 64 * 1024

_SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")
_NAT64_PREFIXES = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
#: Host spellings made only of numeric labels (decimal, octal, hex): inet_aton forms.
_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+))*\.?$", re.IGNORECASE)


class FetchError(Exception):
    """An outbound fetch failed or was refused; ``str(error)`` is safe to log."""


class BlockedAddressError(FetchError):
    """The URL or an address its host resolves to is not allowed (S49)."""


class RedirectRefusedError(FetchError):
    """The server answered with a redirect, which is never followed."""


class ResponseTooLargeError(FetchError):
    """The response body is larger than the cap."""


class FetchTimeoutError(FetchError):
    """The fetch took longer than its time budget."""


class BadResponseError(FetchError):
    """The server answered with a status other than 200, or the connection failed."""


class StatusError(BadResponseError):
    """The server answered with a status other than 200 (and not a redirect)."""

    def __init__(self, status: int) -> None:
        super().__init__(f"the server answered {status}")
        self.status = status

    @property
    def definitive(self) -> bool:
        """True for a client error that retrying will not fix (404, 410, 403…)."""
        return 400 <= self.status < 500 and self.status not in (408, 425, 429)


def _ipv4_is_public(address: ipaddress.IPv4Address) -> bool:
    return not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or address in _SHARED_ADDRESS_SPACE
        or not address.is_global
    )


def is_public_address(address: IPAddress) -> bool:
    """True when ``address`` is globally routable and embeds no non-public IPv4 address."""
    if isinstance(address, ipaddress.IPv4Address):
        return _ipv4_is_public(address)
    if address.ipv4_mapped is not None or address in _IPV4_COMPATIBLE:
        return False
    if any(address in prefix for prefix in _NAT64_PREFIXES):
        return False
    if address.sixtofour is not None and not _ipv4_is_public(address.sixtofour):
        return False
    if address.teredo is not None:
        return False
    return not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_site_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or not address.is_global
    )


@dataclass(frozen=True)
class FetchPolicy:
    """What the guard lets through; built from settings with :meth:`from_settings`."""

    allowed_hosts: frozenset[str] = frozenset()
    allow_http: bool = False
    max_bytes: int = DEFAULT_MAX_BYTES
    timeout: float = DEFAULT_TIMEOUT_SECONDS

    @classmethod
    def from_settings(
        cls,
        settings: CharterSettings,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> FetchPolicy:
        """The policy of a deployment: its allow-list and ``ssrf_allow_http``."""
        return cls(
            allowed_hosts=frozenset(host.lower() for host in settings.ssrf_allowed_hosts),
            allow_http=settings.ssrf_allow_http,
            max_bytes=max_bytes,
            timeout=timeout,
        )

    def host_allowed(self, host: str, port: int) -> bool:
        """True when ``host`` or ``host:port`` is on the allow-list."""
        host = host.lower().rstrip(".")
        bare = host.strip("[]")
        names = {host, bare, f"[{bare}]" if ":" in bare else bare}
        return any(
            name in self.allowed_hosts or f"{name}:{port}" in self.allowed_hosts for name in names
        )


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


def check_url(url: str, policy: FetchPolicy) -> httpx.URL:
    """Parse ``url`` and apply the static rules (scheme, userinfo, host spelling, literal IPs)."""
    import httpx  # on the first outbound fetch: a worker that fetches nothing never loads it

    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError) as exc:
        raise BlockedAddressError("not a valid URL") from exc
    scheme = parsed.scheme
    host = parsed.host
    if not host:
        raise BlockedAddressError("URL has no host")
    if parsed.userinfo:
        raise BlockedAddressError("URL must not contain user information")
    port = parsed.port or _default_port(scheme)
    allowed = policy.host_allowed(host, port)
    if scheme != "https" and not (scheme == "http" and policy.allow_http and allowed):
        raise BlockedAddressError("only https URLs may be fetched")
    if allowed:
        return parsed
    literal: IPAddress | None
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is None and _NUMERIC_HOST.match(host):
        raise BlockedAddressError("numeric host spellings other than dotted quads are refused")
    if literal is not None and not is_public_address(literal):
        raise BlockedAddressError("the URL names a non-public address")
    return parsed
