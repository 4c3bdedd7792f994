"""The asynchronous fetch keeps every rule of the SSRF guard (S49 rules, S96 async fetch):
refused addresses and spellings, the resolved address checked and pinned, no redirects, the
size cap and one time budget; and it holds no worker thread of the shared pool."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import anyio.to_thread
import pytest

from authserver.clients.ssrf.addresses import (
    BadResponseError,
    BlockedAddressError,
    FetchPolicy,
    FetchTimeoutError,
    RedirectRefusedError,
    ResponseTooLargeError,
)
from authserver.clients.ssrf.async_fetch import fetch_async
from tests.authserver.clients.test_ssrf import REFUSED_URLS, never_resolve
from tests.support.document_server import DocumentServer, document_server
from tests.support.slow_documents import slow_host


@pytest.fixture(scope="module")
def docs() -> Iterator[DocumentServer]:
    with document_server() as server:
        yield server


@pytest.fixture
def allowed(docs: DocumentServer) -> FetchPolicy:
    return FetchPolicy(allowed_hosts=frozenset({docs.host}), allow_http=True, timeout=1.0)


@pytest.mark.parametrize("url", REFUSED_URLS)
async def test_s96_async_fetch_refuses_private_and_encoded_addresses(url: str) -> None:
    with pytest.raises(BlockedAddressError):
        await fetch_async(url, FetchPolicy(), resolver=never_resolve)


@pytest.mark.parametrize("addresses", [["127.0.0.1"], ["10.0.0.5"], ["93.184.216.34", "::1"]])
async def test_s96_async_fetch_checks_resolved_addresses(addresses: list[str]) -> None:
    with pytest.raises(BlockedAddressError):
        await fetch_async(
            "https://rebind.example/client.json",
            FetchPolicy(timeout=1.0),
            resolver=lambda host, port: addresses,
        )
    with pytest.raises(BlockedAddressError):
        await fetch_async("https://localhost/client.json", FetchPolicy(timeout=1.0))


async def test_s96_async_fetch_connects_to_the_checked_address(docs: DocumentServer) -> None:
    port = docs.host.rsplit(":", 1)[1]
    policy = FetchPolicy(allowed_hosts=frozenset({f"docs.test:{port}"}), allow_http=True)
    result = await fetch_async(
        f"http://docs.test:{port}/host", policy, resolver=lambda host, _port: ["127.0.0.1"]
    )
    assert json.loads(result.content) == {"host": f"docs.test:{port}"}
    url = docs.publish("/docs/async.json", {"ok": True})
    assert json.loads(
        (
            await fetch_async(
                url, policy.__class__(allowed_hosts=frozenset({docs.host}), allow_http=True)
            )
        ).content
    ) == {"ok": True}


async def test_s96_async_fetch_no_redirects_capped_and_non_200(
    docs: DocumentServer, allowed: FetchPolicy
) -> None:
    docs.publish("/docs/target.json", {"redirected": True})
    before = docs.hits["/docs/target.json"]
    with pytest.raises(RedirectRefusedError):
        await fetch_async(docs.url("/redirect"), allowed)
    assert docs.hits["/docs/target.json"] == before
    small = FetchPolicy(allowed_hosts=frozenset({docs.host}), allow_http=True, max_bytes=4096)
    for path in ("/big", "/big-chunked"):
        with pytest.raises(ResponseTooLargeError):
            await fetch_async(docs.url(path), small)
    with pytest.raises(BadResponseError):
        await fetch_async(docs.url("/docs/missing.json"), allowed)
    closed = FetchPolicy(allowed_hosts=frozenset({"127.0.0.1:1"}), allow_http=True, timeout=1.0)
    with pytest.raises(BadResponseError):
        await fetch_async("http://127.0.0.1:1/client.json", closed)


@pytest.mark.parametrize("path", ["/slow", "/drip"])
async def test_s96_async_fetch_time_budget(
    docs: DocumentServer, allowed: FetchPolicy, path: str
) -> None:
    started = time.monotonic()
    with pytest.raises(FetchTimeoutError):
        await fetch_async(docs.url(path), allowed)
    assert time.monotonic() - started < 2


async def test_s96_async_fetch_hung_resolver_bounded() -> None:
    release = threading.Event()

    def hung_resolver(host: str, port: int) -> list[str]:
        release.wait(30)
        return ["203.0.113.7"]

    try:
        with pytest.raises(FetchTimeoutError):
            await fetch_async(
                "https://hung-dns.example/client.json",
                FetchPolicy(timeout=0.3),
                resolver=hung_resolver,
            )
        assert not release.is_set()
    finally:
        release.set()

    def failing(host: str, port: int) -> list[str]:
        raise socket.gaierror("no such name")

    with pytest.raises(BadResponseError):
        await fetch_async(
            "https://nx.example/client.json", FetchPolicy(timeout=1.0), resolver=failing
        )


async def test_s96_async_fetches_hold_no_worker_thread() -> None:
    """Many fetches hanging on a slow host at once: the shared thread pool stays free."""
    with slow_host() as slow:
        policy = FetchPolicy(
            allowed_hosts=frozenset({f"127.0.0.1:{slow.port}"}), allow_http=True, timeout=1.0
        )
        limiter = anyio.to_thread.current_default_thread_limiter()
        async with anyio.create_task_group() as group:
            for index in range(50):
                group.start_soon(
                    _expect_timeout, f"http://127.0.0.1:{slow.port}/{index}.json", policy
                )
            deadline = time.monotonic() + 5
            while slow.count() < 50 and time.monotonic() < deadline:
                await anyio.sleep(0.02)
            assert slow.count() == 50
            assert limiter.borrowed_tokens == 0


async def _expect_timeout(url: str, policy: FetchPolicy) -> None:
    with pytest.raises(FetchTimeoutError):
        await fetch_async(url, policy)
