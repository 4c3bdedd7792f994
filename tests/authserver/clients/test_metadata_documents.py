"""Client ID metadata documents (S50) through ``load_client``, cached by max-age."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
import pytest

from authserver.clients import metadata_documents
from authserver.clients.metadata_documents import (
    DEFAULT_CACHE_SECONDS,
    MAX_CACHE_SECONDS,
    MIN_CACHE_SECONDS,
    REFRESH_INTERVAL_SECONDS,
    STALE_GRACE_SECONDS,
    FetchedDocument,
    MetadataDocumentError,
    cache_seconds,
    validate_client_id_url,
)
from authserver.clients.ssrf.addresses import FetchTimeoutError
from authserver.clients.store import load_client, prefetch_client
from authserver.config.settings import CharterSettings
from authserver.context import AuthServer
from authserver.endpoints.app import create_app
from authserver.storage.models import Client
from tests.conftest import TEST_ISSUER
from tests.support.clock import Clock
from tests.support.document_server import DocumentServer, document_server
from tests.support.factories import create_client, create_user

START = 1_800_000_000.0
CLIENT_IP = "192.0.2.10"


@pytest.fixture(scope="module")
def docs() -> Iterator[DocumentServer]:
    with document_server() as server:
        yield server


@pytest.fixture(autouse=True)
def fresh_documents(docs: DocumentServer) -> None:
    """Each test (and each database parameter) starts with no documents and no hits."""
    docs.documents.clear()
    docs.hits.clear()


@pytest.fixture
def clock() -> Clock:
    return Clock(START)


@pytest.fixture
def server(
    make_server: Callable[..., AuthServer], docs: DocumentServer, clock: Clock
) -> AuthServer:
    # These tests are about the rules kept in the database (S49, S50); the in-memory budgets
    # of S96 (per-IP limit, negative cache) have tests of their own and are set out of the way.
    return make_server(
        clock=clock,
        ssrf_allowed_hosts=(docs.host,),
        ssrf_allow_http=True,
        metadata_fetches_per_ip_per_minute=1000,
        metadata_fetch_failure_ttl=0,
    )


def document(url: str, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "client_id": url,
        "client_name": "Document Client",
        "client_uri": "https://app.example.com",
        "redirect_uris": ["http://127.0.0.1:6276/oauth/callback", "https://app.example.com/cb"],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    }
    body.update(changes)
    return {key: value for key, value in body.items() if value is not None}


def load(server: AuthServer, client_id: str) -> Client | None:
    """As the endpoints do: fetch (awaited, no transaction open), then read in the transaction."""
    assert anyio.run(prefetch_client, server, client_id, CLIENT_IP) == 0
    with server.database.transaction() as session:
        return load_client(server, session, client_id)


def publish(
    docs: DocumentServer, name: str, headers: dict[str, str] | None = None, **changes: Any
) -> str:
    path = f"/docs/{name}"
    url = docs.url(path)
    docs.publish(path, document(url, **changes), headers)
    return url


def test_cimd_happy_path_and_cache_by_max_age(
    server: AuthServer, docs: DocumentServer, clock: Clock
) -> None:
    url = publish(
        docs,
        "happy.json",
        {"Cache-Control": "public, max-age=600"},
        x_unknown_member={"ignored": True},
        scope="mcp unknown:scope",
    )
    client = load(server, url)
    assert client is not None
    assert client.client_id == url
    assert client.kind == "metadata_document"
    assert client.token_endpoint_auth_method == "none"
    assert client.secret_hash is None
    assert client.redirect_uris == [
        "http://127.0.0.1:6276/oauth/callback",
        "https://app.example.com/cb",
    ]
    assert client.client_name == "Document Client"
    assert client.scope == "mcp"
    assert "x_unknown_member" not in client.client_metadata
    assert client.expires_at == int(START) + 600
    assert docs.hits["/docs/happy.json"] == 1

    clock.now += 599
    assert load(server, url) is not None
    assert docs.hits["/docs/happy.json"] == 1  # served from the cached row

    # After expiry it is fetched again, and changes are picked up.
    docs.publish("/docs/happy.json", document(url, client_name="Renamed"), {})
    clock.now += 2
    refreshed = load(server, url)
    assert refreshed is not None
    assert refreshed.client_name == "Renamed"
    assert refreshed.expires_at == int(clock.now) + DEFAULT_CACHE_SECONDS
    assert docs.hits["/docs/happy.json"] == 2


def test_cimd_stale_row_with_failing_fetch_is_unknown(
    server: AuthServer, docs: DocumentServer, clock: Clock
) -> None:
    url = publish(docs, "vanishing.json")
    assert load(server, url) is not None
    del docs.documents["/docs/vanishing.json"]
    clock.now += DEFAULT_CACHE_SECONDS - 1
    assert load(server, url) is not None
    clock.now += 2
    assert load(server, url) is None
    assert docs.hits["/docs/vanishing.json"] == 2


def test_cimd_disabled_setting(
    make_server: Callable[..., AuthServer], docs: DocumentServer
) -> None:
    server = make_server(
        ssrf_allowed_hosts=(docs.host,), ssrf_allow_http=True, client_id_metadata_documents=False
    )
    url = publish(docs, "disabled.json")
    assert load(server, url) is None
    assert docs.hits["/docs/disabled.json"] == 0


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, DEFAULT_CACHE_SECONDS),
        ("public", DEFAULT_CACHE_SECONDS),
        ("max-age=600", 600),
        ("public, max-age=7200, must-revalidate", 7200),
        ('max-age="900"', 900),
        ("max-age=10", MIN_CACHE_SECONDS),
        ("no-store", MIN_CACHE_SECONDS),
        ("no-cache", MIN_CACHE_SECONDS),
        ("max-age=99999999", MAX_CACHE_SECONDS),
        ("s-maxage=1200", 1200),
    ],
)
def test_cache_lifetime_from_cache_control(header: str | None, seconds: int) -> None:
    assert cache_seconds(header) == seconds


BAD_URLS = [
    "https://app.example.com",
    "https://app.example.com/",
    "https://app.example.com/a/../client.json",
    "https://app.example.com/./client.json",
    "https://app.example.com/a/..",
    "https://app.example.com/a/%2e%2e/client.json",
    "https://app.example.com/a/%2E/client.json",
    "https://app.example.com/client.json#frag",
    "https://app.example.com/client.json#",
    "https://user@app.example.com/client.json",
    "https://user:pw@app.example.com/client.json",
    "http://app.example.com/client.json",
    "https://app.example.com/client .json",
    "https:///client.json",
]


@pytest.mark.parametrize("url", BAD_URLS)
def test_s50_client_id_url_rules(url: str) -> None:
    with pytest.raises(MetadataDocumentError):
        validate_client_id_url(url, CharterSettings())


def test_s50_good_client_id_urls() -> None:
    for url in (
        "https://app.example.com/client.json",
        "https://app.example.com:8443/oauth/client-metadata.json",
        "https://app.example.com/client?version=2",
    ):
        assert validate_client_id_url(url, CharterSettings()) == url


@pytest.mark.parametrize(
    "suffix", ["/docs/../docs/dot.json", "/docs/./dot.json", "/docs/dot.json#x", "/"]
)
def test_s50_bad_urls_are_never_fetched(
    server: AuthServer, docs: DocumentServer, suffix: str
) -> None:
    docs.publish("/docs/dot.json", document(docs.url(suffix)))
    before = sum(docs.hits.values())
    assert load(server, docs.url(suffix)) is None
    assert sum(docs.hits.values()) == before


def test_s50_userinfo_url_never_fetched(server: AuthServer, docs: DocumentServer) -> None:
    url = docs.url("/docs/user.json").replace("http://", "http://user@")
    assert load(server, url) is None
    assert docs.hits["/docs/user.json"] == 0


@pytest.mark.parametrize(
    "changes",
    [
        {"token_endpoint_auth_method": "client_secret_basic"},
        {"token_endpoint_auth_method": "client_secret_post"},
        {"token_endpoint_auth_method": "client_secret_jwt"},
        {"token_endpoint_auth_method": "private_key_jwt"},
        {"client_secret": "shared"},
        {"client_secret_expires_at": 0},
        {"redirect_uris": None},
        {"redirect_uris": []},
        {"redirect_uris": ["javascript:alert(1)"]},
        {"redirect_uris": ["http://evil.example.com/cb"]},
        {"grant_types": ["client_credentials"]},
        {"software_statement": "eyJ.eyJ.sig"},
        {"client_name": "n" * 300},
    ],
)
def test_s50_document_rules(
    server: AuthServer, docs: DocumentServer, changes: dict[str, Any]
) -> None:
    name = "bad.json"
    url = publish(docs, name, **changes)
    assert load(server, url) is None
    assert docs.hits[f"/docs/{name}"] == 1
    with server.database.transaction() as session:
        assert session.get(Client, url) is None


@pytest.mark.parametrize(
    "wrong_id",
    [
        lambda url: url + "/",
        lambda url: url.upper(),
        lambda url: url.replace("http://127.0.0.1", "http://localhost"),
        lambda url: url + "?x=1",
        lambda url: None,
        lambda url: [url],
    ],
)
def test_s50_document_client_id_must_equal_url_exactly(
    server: AuthServer, docs: DocumentServer, wrong_id: Callable[[str], Any]
) -> None:
    url = docs.url("/docs/mismatch.json")
    body = document(url)
    body["client_id"] = wrong_id(url)
    docs.publish("/docs/mismatch.json", body)
    assert load(server, url) is None


@pytest.mark.parametrize(
    "content",
    [b"not json", b"[1, 2]", b'"a string"', b"\xff\xfe{}", None],
)
def test_s50_document_must_be_a_small_json_object(
    server: AuthServer, docs: DocumentServer, content: bytes | None
) -> None:
    url = docs.url("/docs/shape.json")
    if content is None:  # larger than the 5 KiB cap
        content = b'{"client_id": "' + url.encode() + b'", "padding": "' + b"x" * 6000 + b'"}'
    docs.publish("/docs/shape.json", content)
    assert load(server, url) is None


def test_s50_redirect_uri_comes_from_the_document(server: AuthServer, docs: DocumentServer) -> None:
    url = publish(docs, "redirects.json", redirect_uris=["https://only.example.com/cb"])
    client = load(server, url)
    assert client is not None
    assert client.redirect_uris == ["https://only.example.com/cb"]


def test_s49_cimd_on_private_host_refused_without_allow_list(
    make_server: Callable[..., AuthServer], docs: DocumentServer
) -> None:
    server = make_server(ssrf_allow_http=True)
    url = publish(docs, "private.json")
    assert load(server, url) is None
    https_url = url.replace("http://", "https://")
    assert load(make_server(), https_url) is None
    assert docs.hits["/docs/private.json"] == 0


def test_s49_cimd_fetches_rate_limited_per_host(
    server: AuthServer, docs: DocumentServer, clock: Clock
) -> None:
    urls = [publish(docs, f"many-{index}.json") for index in range(31)]
    loaded = [load(server, url) for url in urls]
    assert all(client is not None for client in loaded[:30])
    assert loaded[30] is None
    assert docs.hits["/docs/many-30.json"] == 0
    clock.now += 60
    assert load(server, urls[30]) is not None


def test_s22_cimd_url_equal_to_a_username_refused(server: AuthServer, docs: DocumentServer) -> None:
    url = publish(docs, "username.json")
    create_user(server, username=url)
    assert load(server, url) is None
    assert docs.hits["/docs/username.json"] == 0


def test_registered_clients_still_load(server: AuthServer) -> None:
    client, _ = create_client(server, client_id="https://static.example.com/client")
    loaded = load(server, "https://static.example.com/client")
    assert loaded is not None and loaded.kind == "static"
    create_client(server, client_id="dcr_disabled", kind="dynamic")
    with server.database.transaction() as session:
        row = session.get(Client, "dcr_disabled")
        assert row is not None
        row.disabled = True
    assert load(server, "dcr_disabled") is None
    assert load(server, "") is None
    assert load(server, "x" * 3000) is None
    assert client.client_id


def test_s49_cimd_cache_is_bounded(
    server: AuthServer, docs: DocumentServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(metadata_documents, "MAX_CACHED_DOCUMENTS", 2)
    urls = [publish(docs, f"bounded-{index}.json") for index in range(3)]
    assert load(server, urls[0]) is not None
    assert load(server, urls[1]) is not None
    assert load(server, urls[2]) is None
    assert docs.hits["/docs/bounded-2.json"] == 0
    # Cached rows keep working while the cache is full.
    assert load(server, urls[0]) is not None


def test_cimd_invalid_document_on_refresh_is_unknown_at_once(
    server: AuthServer, docs: DocumentServer, clock: Clock
) -> None:
    url = publish(docs, "turned-bad.json")
    assert load(server, url) is not None
    docs.publish("/docs/turned-bad.json", document(url, redirect_uris=["javascript:x"]))
    clock.now += DEFAULT_CACHE_SECONDS + 1
    assert load(server, url) is None
    assert docs.hits["/docs/turned-bad.json"] == 2


class FailingFetches:
    """Stands in for :func:`metadata_documents.fetch_document` when the document host is down."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def __call__(self, url: str, settings: CharterSettings, **_: Any) -> FetchedDocument:
        self.calls.append(url)
        raise FetchTimeoutError("the fetch timed out")


def test_s49_stale_document_served_within_grace_when_refresh_fails(
    server: AuthServer, docs: DocumentServer, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = publish(docs, "flaky.json")
    assert load(server, url) is not None
    failing = FailingFetches()
    monkeypatch.setattr(metadata_documents, "fetch_document", failing)
    clock.now += DEFAULT_CACHE_SECONDS + 1
    stale = load(server, url)
    assert stale is not None and stale.client_id == url
    assert failing.calls == [url]
    clock.now += STALE_GRACE_SECONDS - 10
    assert load(server, url) is not None
    clock.now += 20
    assert load(server, url) is None
    assert len(failing.calls) == 3


def test_s49_stale_refresh_attempted_once_per_interval(
    server: AuthServer, docs: DocumentServer, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = publish(docs, "herd.json")
    assert load(server, url) is not None
    failing = FailingFetches()
    monkeypatch.setattr(metadata_documents, "fetch_document", failing)
    clock.now += DEFAULT_CACHE_SECONDS  # START and the expiry are multiples of the interval
    for _ in range(5):
        assert load(server, url) is not None
    assert failing.calls == [url]
    clock.now += REFRESH_INTERVAL_SECONDS
    assert load(server, url) is not None
    assert failing.calls == [url, url]


def test_s49_host_budget_cannot_knock_a_cached_client_offline(
    server: AuthServer, docs: DocumentServer, clock: Clock
) -> None:
    """New documents spend the host's budget; refreshing a known one does not."""
    popular = publish(docs, "popular.json", {"Cache-Control": "max-age=300"})
    assert load(server, popular) is not None
    clock.now += 301
    burst = [docs.url(f"/docs/burst-{index}.json") for index in range(31)]
    for url in burst:
        assert load(server, url) is None  # 404s, but each one spent the budget
    assert docs.hits["/docs/burst-30.json"] == 0  # refused by the budget
    refreshed = load(server, popular)
    assert refreshed is not None
    assert refreshed.expires_at == int(clock.now) + 300
    assert docs.hits["/docs/popular.json"] == 2


def test_s49_cimd_cache_is_bounded_per_host(
    server: AuthServer, docs: DocumentServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(metadata_documents, "MAX_DOCUMENTS_PER_HOST", 3)
    port = docs.host.split(":")[1]
    # Other spellings of the same host count; a longer host name does not.
    for client_id in (
        "https://127.0.0.1/a.json",
        f"HTTP://127.0.0.1.:{port}/b.json",
        "https://127.0.0.10/c.json",
    ):
        create_client(server, client_id=client_id, kind="metadata_document")
    first = publish(docs, "per-host-1.json")
    assert load(server, first) is not None
    second = publish(docs, "per-host-2.json")
    assert load(server, second) is None
    assert docs.hits["/docs/per-host-2.json"] == 0
    assert load(server, first) is not None  # cached rows keep working


@dataclass
class Tarpit:
    """A loopback TCP server that accepts connections and never answers until released."""

    host: str
    accepted: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


@contextmanager
def tarpit() -> Iterator[Tarpit]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.05)
    pit = Tarpit(host=f"127.0.0.1:{listener.getsockname()[1]}")
    held: list[socket.socket] = []

    def run() -> None:
        while not pit.release.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            held.append(conn)
            pit.accepted.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield pit
    finally:
        pit.release.set()
        thread.join(5)
        for conn in held:
            conn.close()
        listener.close()


@pytest.mark.parametrize("fetching_endpoint", ["/authorize", "/token"])
async def test_s49_document_fetch_holds_no_database_lock(
    make_server: Callable[..., AuthServer], fetching_endpoint: str
) -> None:
    """While a metadata document host stalls, other requests (writes) still go through."""
    with tarpit() as pit:
        server = make_server(ssrf_allowed_hosts=(pit.host,), ssrf_allow_http=True)
        static, secret = create_client(
            server, confidential=True, grant_types=["client_credentials"]
        )
        document_id = f"http://{pit.host}/client.json"
        transport = httpx.ASGITransport(app=create_app(server))
        async with httpx.AsyncClient(transport=transport, base_url=TEST_ISSUER) as http:
            if fetching_endpoint == "/authorize":
                stalled = http.get(
                    "/authorize", params={"client_id": document_id, "response_type": "code"}
                )
            else:
                stalled = http.post(
                    "/token",
                    data={
                        "grant_type": "authorization_code",
                        "client_id": document_id,
                        "code": "x",
                        "code_verifier": "v" * 43,
                    },
                )
            fetching = asyncio.create_task(stalled)
            assert await asyncio.to_thread(pit.accepted.wait, 10)
            registered = await http.post(
                "/register",
                json={
                    "redirect_uris": ["http://127.0.0.1/cb"],
                    "token_endpoint_auth_method": "none",
                },
            )
            token = await http.post(
                "/token",
                data={"grant_type": "client_credentials"},
                auth=(static.client_id, secret or ""),
            )
            # Both finished while the document fetch was still in flight.
            assert not fetching.done()
            assert registered.status_code == 201, registered.text
            assert token.status_code == 200, token.text
            pit.release.set()
            answered = await fetching
        assert answered.status_code in (400, 401)  # the document could not be fetched
