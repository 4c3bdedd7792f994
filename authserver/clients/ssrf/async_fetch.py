"""One outbound GET through the SSRF guard, asynchronously (S49, S96): the rules of
:func:`authserver.clients.ssrf.fetch.fetch` (static URL checks, the guarded connection, no
redirects, a capped body), awaited on the event loop so that a slow host holds no worker
thread. One time budget covers the whole fetch (resolution, connect, TLS, headers and body):
it is a cancel scope, so a host dripping bytes cannot stretch it. Every failure is a
:class:`~authserver.clients.ssrf.addresses.FetchError`. ``httpx`` loads on the first fetch.
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING

import anyio

from authserver.clients.ssrf.addresses import (
    BadResponseError,
    FetchPolicy,
    FetchTimeoutError,
    check_url,
)
from authserver.clients.ssrf.fetch import FetchResult, add_capped, check_head, client_options
from authserver.clients.ssrf.resolver import Resolver, system_resolver

if TYPE_CHECKING:
    import httpx


async def _get(
    parsed: httpx.URL, url: str, policy: FetchPolicy, accept: str, resolver: Resolver
) -> FetchResult:
    import httpx

    from authserver.clients.ssrf.async_network import AsyncGuardedTransport

    async with (
        httpx.AsyncClient(
            transport=AsyncGuardedTransport(policy, resolver), **client_options(policy, accept)
        ) as client,
        client.stream("GET", parsed) as response,
    ):
        check_head(response, policy)
        body = bytearray()
        async for chunk in response.aiter_bytes():
            add_capped(body, chunk, policy)
        return FetchResult(url=url, headers=response.headers, content=bytes(body))


async def fetch_async(
    url: str,
    policy: FetchPolicy,
    *,
    accept: str = "application/json",
    resolver: Resolver = system_resolver,
) -> FetchResult:
    """GET ``url`` through the guard; raises a :class:`FetchError` subclass on any failure."""
    import httpcore
    import httpx

    parsed = check_url(url, policy)
    try:
        with anyio.fail_after(policy.timeout):
            return await _get(parsed, url, policy, accept, resolver)
    except (TimeoutError, httpcore.TimeoutException, httpx.TimeoutException) as exc:
        raise FetchTimeoutError("the fetch timed out") from exc
    except (httpcore.NetworkError, httpcore.ProtocolError, httpx.HTTPError) as exc:
        raise BadResponseError(f"the fetch failed: {type(exc).__name__}") from exc
    except (ssl.SSLError, OSError) as exc:
        raise BadResponseError(f"the fetch failed: {type(exc).__name__}") from exc
