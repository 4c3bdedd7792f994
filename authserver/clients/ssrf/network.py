"""The connection side of the SSRF guard (S49): an ``httpcore`` network backend that resolves
the host once, checks every address and connects to a checked one (no DNS rebinding between
check and use), under one time budget for every read, write, connect and the name resolution.
"""

from __future__ import annotations

import ipaddress
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import httpcore
import httpx

from authserver.clients.ssrf.addresses import (
    BadResponseError,
    BlockedAddressError,
    FetchPolicy,
    is_public_address,
)
from authserver.clients.ssrf.resolver import Resolver, system_resolver

__all__ = ["GuardedNetworkBackend", "GuardedTransport", "Resolver", "system_resolver"]


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


def checked_addresses(policy: FetchPolicy, host: str, port: int, addresses: list[str]) -> list[str]:
    """``addresses`` (what ``host`` resolved to) when the policy allows every one; raises
    when none exist or any is not public (unless the host is allow-listed)."""
    if not addresses:
        raise BadResponseError("the host name does not resolve")
    if policy.host_allowed(host, port):
        return addresses
    for text in addresses:
        try:
            address = ipaddress.ip_address(text.split("%", 1)[0])
        except ValueError as exc:
            raise BlockedAddressError("the resolver returned an invalid address") from exc
        if not is_public_address(address):
            raise BlockedAddressError("the host resolves to a non-public address")
    return addresses


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
        return checked_addresses(self._policy, host, port, addresses)

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


def core_request(request: httpx.Request) -> httpcore.Request:
    """``request`` as the connection pool below the guarded transports takes it."""
    return httpcore.Request(
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
        response = self._pool.handle_request(core_request(request))
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
