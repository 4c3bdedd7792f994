"""The SSRF guard of outbound fetches (S49)."""

from __future__ import annotations

import ipaddress
import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from authserver.clients.ssrf.addresses import (
    BadResponseError,
    BlockedAddressError,
    FetchPolicy,
    FetchTimeoutError,
    RedirectRefusedError,
    ResponseTooLargeError,
    check_url,
    is_public_address,
)
from authserver.clients.ssrf.fetch import fetch
from authserver.config.settings import CharterSettings
from tests.support.document_server import DocumentServer, document_server


@pytest.fixture(scope="module")
def docs() -> Iterator[DocumentServer]:
    with document_server() as server:
        yield server


@pytest.fixture
def allowed(docs: DocumentServer) -> FetchPolicy:
    """A policy letting the loopback test server through over http."""
    return FetchPolicy(allowed_hosts=frozenset({docs.host}), allow_http=True, timeout=1.0)


def never_resolve(host: str, port: int) -> list[str]:
    raise AssertionError(f"{host} should have been refused before resolution")


REFUSED_URLS = [
    "https://127.0.0.1/client.json",
    "https://127.0.0.2:8443/client.json",
    "https://10.1.2.3/client.json",
    "https://172.16.0.1/client.json",
    "https://192.168.1.1/client.json",
    "https://169.254.169.254/latest/meta-data/",
    "https://100.64.0.1/client.json",
    "https://0.0.0.0/client.json",
    "https://224.0.0.1/client.json",
    "https://255.255.255.255/client.json",
    "https://[::1]/client.json",
    "https://[::]/client.json",
    "https://[::ffff:127.0.0.1]/client.json",
    "https://[::ffff:a9fe:a9fe]/client.json",
    "https://[::127.0.0.1]/client.json",
    "https://[fe80::1]/client.json",
    "https://[fc00::1]/client.json",
    "https://[ff02::1]/client.json",
    "https://[2002:7f00:1::1]/client.json",
    "https://[2002:a00:1::1]/client.json",
    "https://[64:ff9b::a9fe:a9fe]/client.json",
    "https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/client.json",
    "https://0x7f000001/client.json",
    "https://0x7f.0x0.0x0.0x1/client.json",
    "https://2130706433/client.json",
    "https://017700000001/client.json",
    "https://0177.0.0.1/client.json",
    "https://127.1/client.json",
    "https://127.000.000.001/client.json",
    "http://example.com/client.json",
    "ftp://example.com/client.json",
    "https://user:pass@example.com/client.json",
    "https://user@example.com/client.json",
]


@pytest.mark.parametrize("url", REFUSED_URLS)
def test_s49_private_and_encoded_addresses_refused(url: str) -> None:
    with pytest.raises(BlockedAddressError):
        fetch(url, FetchPolicy(), resolver=never_resolve)


def test_s49_name_resolving_to_loopback_refused() -> None:
    # The system resolver maps localhost to 127.0.0.1/::1: refused at connect time.
    with pytest.raises(BlockedAddressError):
        fetch("https://localhost/client.json", FetchPolicy(timeout=1.0))


@pytest.mark.parametrize(
    "addresses",
    [["127.0.0.1"], ["10.0.0.5"], ["169.254.169.254"], ["93.184.216.34", "192.168.0.1"], ["::1"]],
)
def test_s49_dns_checked_at_connect(addresses: list[str]) -> None:
    calls: list[str] = []

    def resolver(host: str, port: int) -> list[str]:
        calls.append(host)
        return addresses

    # The URL passes the static check (a name); the resolved addresses are refused.
    check_url("https://rebind.example/client.json", FetchPolicy())
    with pytest.raises(BlockedAddressError):
        fetch("https://rebind.example/client.json", FetchPolicy(timeout=1.0), resolver=resolver)
    assert calls == ["rebind.example"]


def test_s49_connection_uses_the_checked_address(docs: DocumentServer) -> None:
    # An allow-listed name is connected to the very address it resolved to (pinned), while
    # Host (and, over TLS, SNI and certificate checks) keep the name.
    port = docs.host.rsplit(":", 1)[1]
    policy = FetchPolicy(allowed_hosts=frozenset({f"docs.test:{port}"}), allow_http=True)
    result = fetch(
        f"http://docs.test:{port}/host", policy, resolver=lambda host, _port: ["127.0.0.1"]
    )
    assert json.loads(result.content) == {"host": f"docs.test:{port}"}


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("2002:5db8:d822::1", True),
        ("127.0.0.1", False),
        ("100.127.255.254", False),
        ("192.0.2.1", False),
        ("198.18.0.1", False),
        ("240.0.0.1", False),
        ("::ffff:8.8.8.8", False),
        ("fec0::1", False),
        ("2001:db8::1", False),
    ],
)
def test_s49_public_address_classification(address: str, public: bool) -> None:
    assert is_public_address(ipaddress.ip_address(address)) is public


def test_s49_allow_list_and_http(docs: DocumentServer) -> None:
    url = docs.publish("/docs/allowed.json", {"ok": True})
    with pytest.raises(BlockedAddressError):
        fetch(url, FetchPolicy())  # loopback and http: refused by default
    with pytest.raises(BlockedAddressError):
        fetch(url, FetchPolicy(allowed_hosts=frozenset({docs.host})))  # http still refused
    with pytest.raises(BlockedAddressError):
        fetch(url, FetchPolicy(allow_http=True))  # http only for allowed hosts
    policy = FetchPolicy(allowed_hosts=frozenset({docs.host}), allow_http=True)
    assert json.loads(fetch(url, policy).content) == {"ok": True}
    # A different port on the same host is not allowed.
    other = url.replace(docs.host, "127.0.0.1:1")
    with pytest.raises(BlockedAddressError):
        fetch(other, policy)


def test_s49_policy_from_settings() -> None:
    settings = CharterSettings(
        ssrf_allowed_hosts=("Docs.Example:8443", "127.0.0.1"), ssrf_allow_http=True
    )
    policy = FetchPolicy.from_settings(settings, max_bytes=100)
    assert policy.host_allowed("docs.example", 8443)
    assert not policy.host_allowed("docs.example", 443)
    assert policy.host_allowed("127.0.0.1", 9999)
    assert policy.allow_http and policy.max_bytes == 100


def test_s49_redirects_not_followed(docs: DocumentServer, allowed: FetchPolicy) -> None:
    docs.publish("/docs/target.json", {"redirected": True})
    before = docs.hits["/docs/target.json"]
    with pytest.raises(RedirectRefusedError):
        fetch(docs.url("/redirect"), allowed)
    assert docs.hits["/docs/target.json"] == before


@pytest.mark.parametrize("path", ["/big", "/big-chunked"])
def test_s49_response_size_capped(docs: DocumentServer, path: str) -> None:
    policy = FetchPolicy(allowed_hosts=frozenset({docs.host}), allow_http=True, max_bytes=4096)
    with pytest.raises(ResponseTooLargeError):
        fetch(docs.url(path), policy)


@pytest.mark.parametrize("path", ["/slow", "/drip"])
def test_s49_timeout(docs: DocumentServer, allowed: FetchPolicy, path: str) -> None:
    with pytest.raises(FetchTimeoutError):
        fetch(docs.url(path), allowed)


def test_non_200_and_unreachable(docs: DocumentServer, allowed: FetchPolicy) -> None:
    with pytest.raises(BadResponseError):
        fetch(docs.url("/docs/missing.json"), allowed)
    policy = FetchPolicy(allowed_hosts=frozenset({"127.0.0.1:1"}), allow_http=True, timeout=1.0)
    with pytest.raises(BadResponseError):
        fetch("http://127.0.0.1:1/client.json", policy)
    with pytest.raises(BadResponseError):
        fetch(
            "https://nowhere.invalid/client.json",
            FetchPolicy(timeout=1.0),
            resolver=lambda host, port: [],
        )


def test_s49_slow_header_drip_bounded_by_total_budget() -> None:
    """A server trickling its status line and headers cannot hold a fetch past the budget."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.recv(4096)
            for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 40:
                if stop.wait(0.1):
                    return
                try:
                    connection.sendall(bytes([byte]))
                except OSError:
                    return

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    policy = FetchPolicy(
        allowed_hosts=frozenset({f"127.0.0.1:{port}"}), allow_http=True, timeout=1.0
    )
    started = time.monotonic()
    try:
        with pytest.raises(FetchTimeoutError):
            fetch(f"http://127.0.0.1:{port}/client.json", policy)
        assert time.monotonic() - started < 2.5
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


def test_s49_name_resolution_counts_against_the_time_budget() -> None:
    """A resolver that never answers cannot hold a fetch past its budget."""
    release = threading.Event()
    calls: list[str] = []

    def hung_resolver(host: str, port: int) -> list[str]:
        calls.append(host)
        release.wait(30)
        return ["203.0.113.7"]

    try:
        with pytest.raises(FetchTimeoutError):
            fetch(
                "https://hung-dns.example/client.json",
                FetchPolicy(timeout=0.3),
                resolver=hung_resolver,
            )
        # The fetch gave up while the resolver was still stuck (ordering, not a threshold).
        assert calls == ["hung-dns.example"]
        assert not release.is_set()
    finally:
        release.set()


def test_resolver_errors_still_refuse() -> None:
    def failing(host: str, port: int) -> list[str]:
        raise socket.gaierror("no such name")

    with pytest.raises(BadResponseError):
        fetch("https://nx.example/client.json", FetchPolicy(timeout=1.0), resolver=failing)
