"""The connection side of the SSRF guard for asynchronous fetches (S49, S96): the same
resolve-check-connect step as :mod:`authserver.clients.ssrf.network`, as an ``httpcore``
*async* network backend, so a fetch waits on the event loop and never holds a worker thread
of the shared pool (Starlette's ``run_in_threadpool``) while a slow host answers.

Name resolution (``getaddrinfo`` has no asynchronous form and no timeout) runs in a daemon
thread of its own per fetch, not in the shared pool; the fetch awaits its answer and, when the
fetch's time budget ends first, stops waiting (the thread is left to finish alone). The
address check is :func:`authserver.clients.ssrf.network.checked_addresses`, and the socket
connects to a checked address (no DNS rebinding between check and use).
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import threading
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from typing import Any

import anyio
import httpcore
import httpx

from authserver.clients.ssrf.addresses import BadResponseError, BlockedAddressError, FetchPolicy
from authserver.clients.ssrf.network import (
    Resolver,
    checked_addresses,
    core_request,
    system_resolver,
)


@functools.cache
def shared_ssl_context() -> ssl.SSLContext:
    """One default TLS context (certificate verification on) for every async fetch: loading
    the CA store takes tens of milliseconds, too long to do on the event loop per fetch."""
    return ssl.create_default_context()


async def resolve_in_thread(resolver: Resolver, host: str, port: int) -> list[str]:
    """``resolver(host, port)`` in a daemon thread of its own, awaited on the event loop."""
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[list[str]] = loop.create_future()

    def deliver(addresses: list[str] | None, error: BaseException | None) -> None:
        if answer.done():
            return
        if error is not None:
            answer.set_exception(error)
        else:
            answer.set_result(addresses or [])

    def run() -> None:
        try:
            addresses, error = resolver(host, port), None
        except Exception as exc:  # handed to the awaiting fetch
            addresses, error = None, exc
        try:
            loop.call_soon_threadsafe(deliver, addresses, error)
        except RuntimeError:  # the loop is gone: nobody waits any more
            return

    threading.Thread(target=run, name="charter-ssrf-resolve", daemon=True).start()
    return await answer


class AsyncGuardedNetworkBackend(httpcore.AsyncNetworkBackend):
    """Resolves, checks and connects in one step so the checked address is the one used."""

    def __init__(self, policy: FetchPolicy, resolver: Resolver = system_resolver) -> None:
        self._policy = policy
        self._resolver = resolver
        self._inner = httpcore.AnyIOBackend()

    async def resolve_checked(self, host: str, port: int) -> list[str]:
        """Addresses of ``host`` the policy allows; raises when any is refused or none exist."""
        try:
            addresses = await resolve_in_thread(self._resolver, host, port)
        except OSError as exc:
            raise BadResponseError("the host name does not resolve") from exc
        return checked_addresses(self._policy, host, port, addresses)

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        last_error: Exception | None = None
        for address in await self.resolve_checked(host, port):
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
        raise last_error or BadResponseError("could not connect")

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise BlockedAddressError("unix sockets are never used for outbound fetches")

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)


class _AsyncResponseStream(httpx.AsyncByteStream):
    def __init__(self, stream: AsyncIterable[bytes]) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        close = getattr(self._stream, "aclose", None)
        if close is not None:
            await close()


class AsyncGuardedTransport(httpx.AsyncBaseTransport):
    """An httpx async transport over an ``httpcore`` pool whose connections go through the
    guard (one transport per fetch, one connection)."""

    def __init__(self, policy: FetchPolicy, resolver: Resolver = system_resolver) -> None:
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=shared_ssl_context(),
            max_connections=1,
            network_backend=AsyncGuardedNetworkBackend(policy, resolver),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not isinstance(request.stream, httpx.AsyncByteStream):
            raise TypeError("the guarded async transport needs an asynchronous request body")
        response = await self._pool.handle_async_request(core_request(request))
        if not isinstance(response.stream, AsyncIterable):
            raise TypeError("httpcore returned a synchronous stream")
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_AsyncResponseStream(response.stream),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()
