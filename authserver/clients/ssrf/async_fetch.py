"""One outbound GET through the SSRF guard, asynchronously (S49, S96): the rules of
:func:`authserver.clients.ssrf.fetch.fetch` (static URL checks, the guarded connection, no
redirects, a capped body), awaited on the event loop so that a slow host holds no worker
thread. One time budget covers the whole fetch (resolution, connect, TLS, headers and body):
it is a cancel scope, so a host dripping bytes cannot stretch it. Every failure is a
:class:`~authserver.clients.ssrf.addresses.FetchError`.
"""

from __future__ import annotations

import ssl

import anyio
import httpcore
import httpx

from authserver.clients.ssrf.addresses import (
    BadResponseError,
    FetchPolicy,
    FetchTimeoutError,
    RedirectRefusedError,
    ResponseTooLargeError,
    StatusError,
    check_url,
)
from authserver.clients.ssrf.async_network import AsyncGuardedTransport
from authserver.clients.ssrf.fetch import FetchResult
from authserver.clients.ssrf.network import Resolver, system_resolver


async def _get(
    parsed: httpx.URL, url: str, policy: FetchPolicy, accept: str, resolver: Resolver
) -> FetchResult:
    async with (
        httpx.AsyncClient(
            transport=AsyncGuardedTransport(policy, resolver),
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
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > policy.max_bytes:
                raise ResponseTooLargeError("the response is larger than allowed")
        return FetchResult(url=url, headers=response.headers, content=bytes(body))


async def fetch_async(
    url: str,
    policy: FetchPolicy,
    *,
    accept: str = "application/json",
    resolver: Resolver = system_resolver,
) -> FetchResult:
    """GET ``url`` through the guard; raises a :class:`FetchError` subclass on any failure."""
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
