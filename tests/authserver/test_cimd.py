"""Client ID metadata documents (S50) through ``load_client``, cached by max-age."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from authserver import cimd
from authserver.cimd import (
    DEFAULT_CACHE_SECONDS,
    MAX_CACHE_SECONDS,
    MIN_CACHE_SECONDS,
    MetadataDocumentError,
    cache_seconds,
    validate_client_id_url,
)
from authserver.clients import load_client
from authserver.context import AuthServer
from authserver.settings import AuthServerSettings
from authserver.storage.models import Client
from tests.authserver.ssrf_support import DocumentServer, document_server
from tests.support.factories import create_client, create_user

START = 1_800_000_000.0


@pytest.fixture(scope="module")
def docs() -> Iterator[DocumentServer]:
    with document_server() as server:
        yield server


@pytest.fixture(autouse=True)
def fresh_documents(docs: DocumentServer) -> None:
    """Each test (and each database parameter) starts with no documents and no hits."""
    docs.documents.clear()
    docs.hits.clear()


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def server(
    make_server: Callable[..., AuthServer], docs: DocumentServer, clock: Clock
) -> AuthServer:
    return make_server(clock=clock, ssrf_allowed_hosts=(docs.host,), ssrf_allow_http=True)


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
        validate_client_id_url(url, AuthServerSettings())


def test_s50_good_client_id_urls() -> None:
    for url in (
        "https://app.example.com/client.json",
        "https://app.example.com:8443/oauth/client-metadata.json",
        "https://app.example.com/client?version=2",
    ):
        assert validate_client_id_url(url, AuthServerSettings()) == url


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
    monkeypatch.setattr(cimd, "MAX_CACHED_DOCUMENTS", 2)
    urls = [publish(docs, f"bounded-{index}.json") for index in range(3)]
    assert load(server, urls[0]) is not None
    assert load(server, urls[1]) is not None
    assert load(server, urls[2]) is None
    assert docs.hits["/docs/bounded-2.json"] == 0
    # Cached rows keep working while the cache is full.
    assert load(server, urls[0]) is not None
