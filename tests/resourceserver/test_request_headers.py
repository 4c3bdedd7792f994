"""A request's headers indexed once answer every lookup as Starlette's Headers do."""

from __future__ import annotations

import pytest
from starlette.datastructures import Headers

from resourceserver.request_headers import IndexedHeaders, forget_request_headers, request_headers

RAW = [
    (b"host", b"127.0.0.1:8000"),
    (b"authorization", b"Bearer abc"),
    (b"accept", b"application/json, text/event-stream"),
    (b"x-repeated", b"one"),
    (b"x-repeated", b"two"),
    (b"x-latin", "caf\u00e9".encode("latin-1")),
]


@pytest.mark.parametrize(
    "name", ["host", "Authorization", "ACCEPT", "x-repeated", "X-Latin", "origin", "mcp-name"]
)
def test_indexed_headers_answer_as_starlette_headers(name: str) -> None:
    scope = {"type": "http", "headers": RAW}
    plain, indexed = Headers(scope=scope), IndexedHeaders(scope)
    assert indexed.get(name) == plain.get(name)
    assert indexed.get(name, "fallback") == plain.get(name, "fallback")
    assert (name in indexed) == (name in plain)
    assert indexed.getlist(name) == plain.getlist(name)
    if name in plain:
        assert indexed[name] == plain[name]
    else:
        with pytest.raises(KeyError):
            indexed[name]
    assert indexed.raw == plain.raw
    assert list(indexed.items()) == list(plain.items())
    assert 42 not in indexed


def test_one_index_per_request() -> None:
    scope = {"type": "http", "headers": RAW}
    assert request_headers(scope) is request_headers(scope)
    assert request_headers({"type": "http", "headers": RAW}) is not request_headers(scope)


def test_the_index_is_let_go_before_a_long_response() -> None:
    scope = {"type": "http", "headers": RAW}
    headers = request_headers(scope)
    assert headers.get("host") == "127.0.0.1:8000"
    forget_request_headers(scope)
    assert "charter.headers" not in scope
    assert headers._first is None  # the dictionary is freed even while the object is held
    assert headers.get("authorization") == "Bearer abc"  # and made again if asked
    forget_request_headers(scope)  # nothing to forget: no error
