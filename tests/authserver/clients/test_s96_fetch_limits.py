"""S96: the budgets of client ID metadata document fetches, checked before anything is sent.

Through the real endpoints (the ASGI app, each request from the client address the test
chooses) against loopback document hosts: a fast one (:mod:`tests.support.document_server`)
and one that accepts connections and never answers (:mod:`tests.support.slow_documents`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager

import httpx
import pytest

from authserver.clients.fetch_limits import QUEUE_SECONDS, FetchLimits
from authserver.context import AuthServer
from authserver.endpoints.app import create_app
from tests.conftest import TEST_ISSUER
from tests.support.clock import Clock
from tests.support.document_server import DocumentServer, document_server
from tests.support.factories import create_client
from tests.support.live import free_port
from tests.support.slow_documents import SlowHost, slow_host


@pytest.fixture(scope="module")
def docs() -> Iterator[DocumentServer]:
    with document_server() as server:
        yield server


@pytest.fixture(autouse=True)
def fresh_documents(docs: DocumentServer) -> None:
    docs.documents.clear()
    docs.hits.clear()


@pytest.fixture
def slow() -> Iterator[SlowHost]:
    with slow_host() as host:
        yield host


def token_form(client_id: str) -> dict[str, str]:
    """A token request naming ``client_id`` (refused later: the code is made up)."""
    return {
        "grant_type": "authorization_code",
        "client_id": client_id,
        "code": "x",
        "code_verifier": "v" * 43,
    }


@asynccontextmanager
async def client_from(server: AuthServer, ip: str) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of ``server``'s app whose requests come from ``ip``."""
    transport = httpx.ASGITransport(app=create_app(server), client=(ip, 50000))
    async with httpx.AsyncClient(transport=transport, base_url=TEST_ISSUER, timeout=30) as http:
        yield http


async def wait_accepted(slow: SlowHost, count: int) -> None:
    """Until the slow host accepted ``count`` connections (at most 10 s)."""
    deadline = time.monotonic() + 10
    while slow.count() < count:
        assert time.monotonic() < deadline, f"the slow host saw {slow.count()} connections"
        await asyncio.sleep(0.02)


async def test_s96_per_ip_limit_checked_before_any_fetch(
    make_server: Callable[..., AuthServer], docs: DocumentServer
) -> None:
    """Past ``metadata_fetches_per_ip_per_minute`` the document host sees nothing more from
    that address: 429 ``slow_down`` with ``Retry-After`` (the 429 page at /authorize)."""
    clock = Clock()
    server = make_server(
        clock=clock,
        ssrf_allowed_hosts=(docs.host,),
        ssrf_allow_http=True,
        metadata_fetches_per_ip_per_minute=3,
    )
    urls = [docs.url(f"/docs/ip-{index}.json") for index in range(6)]  # all 404
    async with client_from(server, "198.51.100.7") as attacker:
        for url in urls[:3]:
            answer = await attacker.post("/token", data=token_form(url))
            assert answer.status_code == 401, answer.text
            assert answer.json()["error"] == "invalid_client"
        refused = await attacker.post("/token", data=token_form(urls[3]))
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"] == "slow_down"
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        page = await attacker.get(
            "/authorize", params={"client_id": urls[4], "response_type": "code"}
        )
        assert page.status_code == 429
        assert page.headers["retry-after"]
    assert [docs.hits[f"/docs/ip-{index}.json"] for index in range(6)] == [1, 1, 1, 0, 0, 0]
    # Another address is not affected; the first one may fetch again a minute later.
    async with client_from(server, "203.0.113.9") as other:
        answer = await other.post("/token", data=token_form(urls[5]))
        assert answer.status_code == 401
    assert docs.hits["/docs/ip-5.json"] == 1
    clock.advance(60)
    async with client_from(server, "198.51.100.7") as attacker:
        answer = await attacker.post("/token", data=token_form(urls[3]))
        assert answer.status_code == 401
    assert docs.hits["/docs/ip-3.json"] == 1


async def test_s96_per_ip_fetches_in_flight_are_bounded(
    make_server: Callable[..., AuthServer], slow: SlowHost
) -> None:
    """Two fetches of one address hang on a slow host: its third request is refused at once,
    and the slow host never sees it."""
    host = f"127.0.0.1:{slow.port}"
    server = make_server(ssrf_allowed_hosts=(host,), ssrf_allow_http=True)
    async with client_from(server, "198.51.100.8") as attacker:
        hanging = [
            asyncio.ensure_future(
                attacker.post("/token", data=token_form(f"http://{host}/c/{index}.json"))
            )
            for index in range(2)
        ]
        await wait_accepted(slow, 2)
        started = time.monotonic()
        third = await attacker.post("/token", data=token_form(f"http://{host}/c/2.json"))
        assert time.monotonic() - started < 2
        assert third.status_code == 429, third.text
        assert slow.count() == 2
        slow.release.set()
        for task in hanging:
            task.cancel()
        await asyncio.gather(*hanging, return_exceptions=True)


async def test_s96_negative_cache_skips_repeat_fetches(
    make_server: Callable[..., AuthServer], docs: DocumentServer
) -> None:
    """A URL that failed is not fetched again within ``metadata_fetch_failure_ttl``; a host
    that could not be reached is not tried for any URL; both are tried again after it."""
    clock = Clock()
    closed = f"127.0.0.1:{free_port()}"  # nothing listens: the connection is refused
    server = make_server(
        clock=clock,
        ssrf_allowed_hosts=(docs.host, closed),
        ssrf_allow_http=True,
        metadata_fetch_failure_ttl=30,
    )
    missing = docs.url("/docs/missing.json")
    async with client_from(server, "198.51.100.9") as http:
        for _ in range(3):
            answer = await http.post("/token", data=token_form(missing))
            assert answer.status_code == 401
        assert docs.hits["/docs/missing.json"] == 1
        # A 404 is about the URL only: another document of the same host is fetched.
        await http.post("/token", data=token_form(docs.url("/docs/other.json")))
        assert docs.hits["/docs/other.json"] == 1

        limits = server.metadata_fetch_limits()
        await http.post("/token", data=token_form(f"http://{closed}/a.json"))
        assert limits.failed_recently(f"http://{closed}/b.json", "127.0.0.1")
        clock.advance(31)
        assert not limits.failed_recently(f"http://{closed}/b.json", "127.0.0.1")
        answer = await http.post("/token", data=token_form(missing))
        assert answer.status_code == 401
    assert docs.hits["/docs/missing.json"] == 2


async def test_s96_unreachable_host_not_tried_again_for_other_urls(
    make_server: Callable[..., AuthServer], slow: SlowHost
) -> None:
    """A host whose fetch timed out is remembered: other URLs under it are not fetched."""
    host = f"127.0.0.1:{slow.port}"
    server = make_server(ssrf_allowed_hosts=(host,), ssrf_allow_http=True)
    limits = server.metadata_fetch_limits()
    # The host failed (as after a 5 s timeout); remembered for the URL and the host.
    limits.remember_failure(f"http://{host}/first.json", "127.0.0.1")
    async with client_from(server, "198.51.100.10") as http:
        for index in range(5):
            answer = await http.post("/token", data=token_form(f"http://{host}/n/{index}.json"))
            assert answer.status_code == 401
    assert slow.count() == 0


async def test_s96_global_budget_fails_fast(
    make_server: Callable[..., AuthServer], slow: SlowHost
) -> None:
    """With every global slot held by fetches hanging on a slow host, another fetch (from
    another address, under another URL) waits at most the short queue time, then the client
    is unknown: no 5 s wait, nothing sent."""
    host = f"127.0.0.1:{slow.port}"
    server = make_server(ssrf_allowed_hosts=(host,), ssrf_allow_http=True)
    server.fetch_limits = FetchLimits(concurrency=2, per_host_in_flight=10, clock=server.clock)
    hanging: list[asyncio.Future[httpx.Response]] = []
    clients = [client_from(server, f"198.51.100.{20 + index}") for index in range(3)]
    first, second, third = [await context.__aenter__() for context in clients]
    try:
        for index, http in enumerate((first, second)):
            url = f"http://{host}/held/{index}.json"
            hanging.append(asyncio.ensure_future(http.post("/token", data=token_form(url))))
        await wait_accepted(slow, 2)
        assert server.fetch_limits.in_flight == 2
        started = time.monotonic()
        answer = await third.post("/token", data=token_form(f"http://{host}/late.json"))
        waited = time.monotonic() - started
        assert answer.status_code == 401, answer.text
        assert answer.json()["error"] == "invalid_client"
        # A fetch that waited for a slot would wait for the held ones, which end only at their
        # 5 s budget: well under that (generous for a loaded machine), the queue gave up.
        assert QUEUE_SECONDS <= waited < 4.5, waited
        assert slow.count() == 2
        # Refused for want of a slot: not remembered as failing, and no per-IP minute spent.
        assert not server.fetch_limits.failed_recently(f"http://{host}/late.json", "other")
    finally:
        slow.release.set()
        for task in hanging:
            task.cancel()
        await asyncio.gather(*hanging, return_exceptions=True)
        for context in clients:
            await context.__aexit__(None, None, None)


async def test_s96_per_host_budget_refuses_at_once(
    make_server: Callable[..., AuthServer], slow: SlowHost
) -> None:
    """Many URLs under one slow host: two fetches in flight, the rest refused without waiting."""
    host = f"127.0.0.1:{slow.port}"
    server = make_server(ssrf_allowed_hosts=(host,), ssrf_allow_http=True)
    clients = [client_from(server, f"198.51.100.{40 + index}") for index in range(3)]
    opened = [await context.__aenter__() for context in clients]
    hanging: list[asyncio.Future[httpx.Response]] = []
    try:
        for index, http in enumerate(opened[:2]):
            url = f"http://{host}/busy/{index}.json"
            hanging.append(asyncio.ensure_future(http.post("/token", data=token_form(url))))
        await wait_accepted(slow, 2)
        started = time.monotonic()
        answer = await opened[2].post("/token", data=token_form(f"http://{host}/busy/2.json"))
        assert time.monotonic() - started < QUEUE_SECONDS + 1
        assert answer.status_code == 401
        assert slow.count() == 2
    finally:
        slow.release.set()
        for task in hanging:
            task.cancel()
        await asyncio.gather(*hanging, return_exceptions=True)
        for context in clients:
            await context.__aexit__(None, None, None)


async def test_s96_cached_documents_need_no_fetch_budget(
    make_server: Callable[..., AuthServer], docs: DocumentServer, slow: SlowHost
) -> None:
    """While the only global slot hangs on a slow host, a cached document client and a
    registered client with an https id are served at once (no plan, no slot, no wait)."""
    host = f"127.0.0.1:{slow.port}"
    server = make_server(ssrf_allowed_hosts=(docs.host, host), ssrf_allow_http=True)
    server.fetch_limits = FetchLimits(concurrency=1, clock=server.clock)
    url = docs.url("/docs/cached.json")
    docs.publish(
        "/docs/cached.json",
        {
            "client_id": url,
            "client_name": "Cached",
            "redirect_uris": ["https://app.example.com/cb"],
            "token_endpoint_auth_method": "none",
        },
    )
    create_client(server, client_id="https://static.example.com/client")
    async with client_from(server, "198.51.100.60") as http:
        first = await http.post("/token", data=token_form(url))
        assert first.json()["error"] == "invalid_grant", first.text  # the client is known
        await http.post("/token", data=token_form("https://static.example.com/client"))
        hanging = asyncio.ensure_future(
            http.post("/token", data=token_form(f"http://{host}/hang.json"))
        )
        try:
            await wait_accepted(slow, 1)
            for client_id in (url, "https://static.example.com/client"):
                started = time.monotonic()
                answer = await http.post("/token", data=token_form(client_id))
                assert time.monotonic() - started < QUEUE_SECONDS, client_id
                assert answer.json()["error"] == "invalid_grant", answer.text
        finally:
            slow.release.set()
            hanging.cancel()
            await asyncio.gather(hanging, return_exceptions=True)
    assert docs.hits["/docs/cached.json"] == 1
