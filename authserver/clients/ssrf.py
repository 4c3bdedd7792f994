"""An SSRF guard for the server's outbound fetches (S49): client ID metadata documents and,
later, remote ``jwks_uri`` documents (draft-ietf-oauth-client-id-metadata-document §6.5/§6.6,
RFC 9700 §4.15 on fetched URLs).

Rules:

- ``https`` only (``http`` only for allow-listed hosts when ``ssrf_allow_http`` is set);
  no user information; no numeric host spellings other than a canonical dotted quad or an
  IPv6 literal (``2130706433``, ``0x7f000001``, ``017700000001``, ``127.1`` are refused).
- Every address the host resolves to must be public: private, loopback, link-local,
  multicast, reserved, unspecified, CGNAT (100.64/10), IPv4-mapped/compatible IPv6, NAT64,
  and 6to4/Teredo addresses embedding such IPv4 addresses are refused.
- The check runs inside the connection itself (an ``httpcore`` network backend): the name is
  resolved once, the addresses checked, and the socket connects to a checked address, so a
  DNS answer that changes between check and use (rebinding) cannot slip through. TLS still
  verifies the certificate against, and sends SNI for, the original host name.
- Hosts listed in ``ssrf_allowed_hosts`` (``host`` or ``host:port``) skip the address check.
- Redirects are never followed (a 3xx is an error); the body is streamed and abandoned past
  ``max_bytes``; every read, write and connect of a fetch draws on one time budget
  (``timeout``), so a server dripping headers or body cannot hold the fetch longer. Name
  resolution draws on the same budget: it runs in a helper thread that the fetch stops
  waiting for when the budget is spent (a hung resolver thread is left to finish alone).
- No proxy from the environment is used: it would bypass the address check.

Callers cache successful fetches themselves (metadata documents are cached as database rows,
whose number is bounded by a per-host fetch rate and purged after expiry).
"""

from __future__ import annotations

import ipaddress
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

from authserver.config.settings import CharterSettings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: ``(host, port) -> addresses``; the default uses :func:`socket.getaddrinfo`.
Resolver = Callable[[str, int], list[str]]

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


def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (TCP), in the resolver's order."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def resolve_within(resolver: Resolver, host: str, port: int, seconds: float) -> list[str]:
    """``resolver(host, port)``, but give up after ``seconds`` (raises ``ConnectTimeout``).

    ``getaddrinfo`` has no timeout of its own: it runs in a daemon thread, abandoned if it
    does not answer in time.
    """
    answers: list[list[str]] = []
    errors: list[Exception] = []

    def run() -> None:
        try:
            answers.append(resolver(host, port))
        except Exception as exc:  # re-raised in the caller's thread
            errors.append(exc)

    thread = threading.Thread(target=run, name="charter-ssrf-resolve", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise httpcore.ConnectTimeout("name resolution took longer than the fetch's budget")
    if errors:
        raise errors[0]
    if not answers:
        raise OSError("the resolver failed")
    return answers[0]


class _Deadline:
    """One time budget shared by every network operation of a fetch."""

    def __init__(self, seconds: float, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._end = clock() + seconds

    def remaining(self, timeout: float | None) -> float:
        """The smaller of ``timeout`` and what is left; raises when nothing is left."""
        left = self._end - self._clock()
        if left <= 0:
            raise httpcore.ReadTimeout("the fetch's time budget is spent")
        return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A stream whose reads and writes never outlast the fetch's deadline (no slow drip)."""

    def __init__(self, inner: httpcore.NetworkStream, deadline: _Deadline) -> None:
        self._inner = inner
        self._deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._deadline.remaining(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._deadline.remaining(timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        inner = self._inner.start_tls(
            ssl_context, server_hostname, self._deadline.remaining(timeout)
        )
        return _DeadlineStream(inner, self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class GuardedNetworkBackend(httpcore.NetworkBackend):
    """Resolves, checks and connects in one step so the checked address is the one used."""

    def __init__(
        self,
        policy: FetchPolicy,
        resolver: Resolver = system_resolver,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._policy = policy
        self._resolver = resolver
        self._inner = httpcore.SyncBackend()
        self._deadline = _Deadline(policy.timeout, clock)

    def resolve_checked(self, host: str, port: int) -> list[str]:
        """Addresses of ``host`` the policy allows; raises when any is refused or none exist."""
        try:
            addresses = resolve_within(self._resolver, host, port, self._deadline.remaining(None))
        except OSError as exc:
            raise BadResponseError("the host name does not resolve") from exc
        if not addresses:
            raise BadResponseError("the host name does not resolve")
        if self._policy.host_allowed(host, port):
            return addresses
        for text in addresses:
            try:
                address = ipaddress.ip_address(text.split("%", 1)[0])
            except ValueError as exc:
                raise BlockedAddressError("the resolver returned an invalid address") from exc
            if not is_public_address(address):
                raise BlockedAddressError("the host resolves to a non-public address")
        return addresses

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        last_error: Exception | None = None
        for address in self.resolve_checked(host, port):
            try:
                stream = self._inner.connect_tcp(
                    address, port, self._deadline.remaining(timeout), local_address, socket_options
                )
                return _DeadlineStream(stream, self._deadline)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
        raise last_error or BadResponseError("could not connect")

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        raise BlockedAddressError("unix sockets are never used for outbound fetches")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class _ResponseStream(httpx.SyncByteStream):
    def __init__(self, stream: Iterable[bytes]) -> None:
        self._stream = stream

    def __iter__(self) -> Iterator[bytes]:
        yield from self._stream

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if close is not None:
            close()


class GuardedTransport(httpx.BaseTransport):
    """An httpx transport over an ``httpcore`` pool whose connections go through the guard."""

    def __init__(
        self,
        policy: FetchPolicy,
        resolver: Resolver = system_resolver,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # One transport per fetch: its deadline starts now and covers every operation.
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl.create_default_context(),
            max_connections=1,
            network_backend=GuardedNetworkBackend(policy, resolver, clock),
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if not isinstance(request.stream, httpx.SyncByteStream):
            raise TypeError("the guarded transport is synchronous")
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        response = self._pool.handle_request(core_request)
        if not isinstance(response.stream, Iterable):
            raise TypeError("httpcore returned an asynchronous stream")
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(response.stream),
            extensions=response.extensions,
        )

    def close(self) -> None:
        self._pool.close()


@dataclass(frozen=True)
class FetchResult:
    """A successful (200) response: its headers and the whole, capped body."""

    url: str
    headers: httpx.Headers
    content: bytes


def fetch(
    url: str,
    policy: FetchPolicy,
    *,
    accept: str = "application/json",
    resolver: Resolver = system_resolver,
    clock: Callable[[], float] = time.monotonic,
) -> FetchResult:
    """GET ``url`` through the guard; raises a :class:`FetchError` subclass on any failure."""
    parsed = check_url(url, policy)
    deadline = clock() + policy.timeout
    transport = GuardedTransport(policy, resolver, clock)
    try:
        with (
            httpx.Client(
                transport=transport,
                follow_redirects=False,
                trust_env=False,
                timeout=httpx.Timeout(policy.timeout),
                headers={"Accept": accept, "User-Agent": "charter-authserver"},
            ) as client,
            client.stream("GET", parsed) as response,
        ):
            if response.is_redirect or 300 <= response.status_code < 400:
                raise RedirectRefusedError("redirects are not followed")
            if response.status_code != 200:
                raise StatusError(response.status_code)
            declared = response.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > policy.max_bytes:
                raise ResponseTooLargeError("the response is larger than allowed")
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > policy.max_bytes:
                    raise ResponseTooLargeError("the response is larger than allowed")
                if clock() > deadline:
                    raise FetchTimeoutError("the fetch took too long")
            return FetchResult(url=url, headers=response.headers, content=bytes(body))
    except (httpcore.TimeoutException, httpx.TimeoutException) as exc:
        raise FetchTimeoutError("the fetch timed out") from exc
    except (httpcore.NetworkError, httpcore.ProtocolError, httpx.HTTPError) as exc:
        raise BadResponseError(f"the fetch failed: {type(exc).__name__}") from exc
    except (ssl.SSLError, OSError) as exc:
        raise BadResponseError(f"the fetch failed: {type(exc).__name__}") from exc
