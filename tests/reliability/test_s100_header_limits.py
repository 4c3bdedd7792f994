"""S100 against a real ``charter serve``: in both worker modes — one process on SQLite and
``--workers 2`` on PostgreSQL — a request head longer than ``MAX_HEADER_BYTES`` gets 400, one
with more than ``MAX_HEADER_COUNT`` header lines gets 431, and a client that does not finish its
head within ``HEADER_TIMEOUT_SECONDS`` is disconnected; each connection is closed, not buffered,
and ordinary requests keep working (RFC 9110 §5.4, RFC 6585 §5)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from authserver.ops.http_limits import HEADER_TIMEOUT_SECONDS, MAX_HEADER_BYTES, MAX_HEADER_COUNT
from tests.support.charter_process import CharterProcess, run_charter

HEAD = b"GET /.well-known/oauth-authorization-server HTTP/1.1\r\nHost: 127.0.0.1\r\n"
#: What an attacker sends: far more than the cap, never terminated.
FLOOD_BYTES = 25 * MAX_HEADER_BYTES


@pytest.fixture(params=["single", pytest.param("workers", marks=pytest.mark.postgres)])
def charter(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CharterProcess]:
    args: list[str] = []
    if request.param == "workers":
        args = ["--workers", "2", "--database-url", request.getfixturevalue("postgres_url")]
    with run_charter(tmp_path / "data", *args) as running:
        yield running


@contextmanager
def connection(charter: CharterProcess) -> Iterator[socket.socket]:
    parts = urlsplit(charter.base_url)
    with socket.create_connection((parts.hostname or "", parts.port or 80), timeout=30) as sock:
        yield sock


def send_in_background(sock: socket.socket, data: bytes) -> threading.Thread:
    def send() -> None:
        try:
            sock.sendall(data)
        except OSError:
            pass  # the server closed the connection: what is expected

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def read_until_closed(sock: socket.socket) -> bytes:
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    return received


def assert_still_serving(charter: CharterProcess) -> None:
    response = httpx.get(charter.base_url + "/.well-known/oauth-authorization-server", timeout=30)
    assert response.status_code == 200


def test_s100_oversized_head_is_refused_and_closed(charter: CharterProcess) -> None:
    for _ in range(5):
        with connection(charter) as sock:
            sender = send_in_background(sock, HEAD + b"X-Flood: " + b"a" * FLOOD_BYTES)
            answer = read_until_closed(sock)
            sender.join(timeout=30)
        assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    assert_still_serving(charter)


def test_s100_too_many_header_lines_get_431(charter: CharterProcess) -> None:
    lines = b"".join(b"X-H%d: v\r\n" % index for index in range(MAX_HEADER_COUNT + 1))
    with connection(charter) as sock:
        sock.sendall(HEAD + lines + b"\r\n")
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
    fine = b"".join(b"X-H%d: v\r\n" % index for index in range(MAX_HEADER_COUNT - 2))
    with connection(charter) as sock:
        sock.sendall(HEAD + fine + b"Connection: close\r\n\r\n")
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]


def test_s100_a_head_not_finished_in_time_is_disconnected(charter: CharterProcess) -> None:
    with connection(charter) as sock:
        started = time.monotonic()
        sock.sendall(HEAD + b"X-Slow: ")
        answer = read_until_closed(sock)
        waited = time.monotonic() - started
    assert answer == b""
    assert HEADER_TIMEOUT_SECONDS * 0.5 <= waited < HEADER_TIMEOUT_SECONDS * 3
    with connection(charter) as sock:  # a connection that sends nothing at all
        started = time.monotonic()
        assert read_until_closed(sock) == b""
        assert time.monotonic() - started < HEADER_TIMEOUT_SECONDS * 3
    assert_still_serving(charter)
