"""One outbound GET through the SSRF guard (S49): static URL checks, the guarded connection,
no redirects, a capped body and one time budget; every failure is a :class:`FetchError`.

``httpx`` (and the guarded transport over it) is imported by the first fetch, not with this
module: a worker that never fetches does not keep the HTTP client in memory.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from authserver.clients.ssrf.addresses import (
    BadResponseError,
    FetchPolicy,
    FetchTimeoutError,
    RedirectRefusedError,
    ResponseTooLargeError,
    StatusError,
    check_url,
)
from authserver.clients.ssrf.resolver import Resolver, system_resolver

if TYPE_CHECKING:
    import httpx


@dataclass(frozen=True)
class FetchResult:
    """A successful (200) response: its headers and the whole, capped body."""

    url: str
    headers: httpx.Headers
    content: bytes


def client_options(policy: FetchPolicy, accept: str) -> dict[str, Any]:
    """The keyword arguments of the guarded ``httpx`` client, synchronous or not."""
    import httpx

    return {
        "follow_redirects": False,
        "trust_env": False,
        "timeout": httpx.Timeout(policy.timeout),
        "headers": {"Accept": accept, "User-Agent": "charter-authserver"},
    }


def check_head(response: httpx.Response, policy: FetchPolicy) -> None:
    """Refuse redirects, other statuses than 200 and a declared length above the cap."""
    if response.is_redirect or 300 <= response.status_code < 400:
        raise RedirectRefusedError("redirects are not followed")
    if response.status_code != 200:
        raise StatusError(response.status_code)
    declared = response.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > policy.max_bytes:
        raise ResponseTooLargeError("the response is larger than allowed")


def add_capped(body: bytearray, chunk: bytes, policy: FetchPolicy) -> None:
    """Append ``chunk`` to ``body``, refusing a body larger than the cap."""
    body += chunk
    if len(body) > policy.max_bytes:
        raise ResponseTooLargeError("the response is larger than allowed")


def fetch(
    url: str,
    policy: FetchPolicy,
    *,
    accept: str = "application/json",
    resolver: Resolver = system_resolver,
    clock: Callable[[], float] = time.monotonic,
) -> FetchResult:
    """GET ``url`` through the guard; raises a :class:`FetchError` subclass on any failure."""
    import httpcore
    import httpx

    from authserver.clients.ssrf.network import GuardedTransport

    parsed = check_url(url, policy)
    deadline = clock() + policy.timeout
    transport = GuardedTransport(policy, resolver, clock)
    try:
        with (
            httpx.Client(transport=transport, **client_options(policy, accept)) as client,
            client.stream("GET", parsed) as response,
        ):
            check_head(response, policy)
            body = bytearray()
            for chunk in response.iter_bytes():
                add_capped(body, chunk, policy)
                if clock() > deadline:
                    raise FetchTimeoutError("the fetch took too long")
            return FetchResult(url=url, headers=response.headers, content=bytes(body))
    except (httpcore.TimeoutException, httpx.TimeoutException) as exc:
        raise FetchTimeoutError("the fetch timed out") from exc
    except (httpcore.NetworkError, httpcore.ProtocolError, httpx.HTTPError) as exc:
        raise BadResponseError(f"the fetch failed: {type(exc).__name__}") from exc
    except (ssl.SSLError, OSError) as exc:
        raise BadResponseError(f"the fetch failed: {type(exc).__name__}") from exc
