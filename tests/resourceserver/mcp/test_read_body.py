"""resourceserver.mcp.http.read_body: the body from the ASGI receive channel, bounded."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.requests import ClientDisconnect, Request

from resourceserver.mcp.http import accepts, read_body


def _request(messages: list[dict[str, Any]], headers: list[tuple[bytes, bytes]]) -> Request:
    pending = list(messages)

    async def receive() -> Any:
        return pending.pop(0)

    return Request({"type": "http", "method": "POST", "headers": headers}, receive)


def _chunk(body: bytes, more: bool) -> dict[str, Any]:
    return {"type": "http.request", "body": body, "more_body": more}


async def test_one_message_and_chunked_bodies_are_read_whole() -> None:
    assert await read_body(_request([_chunk(b'{"a":1}', False)], []), 100) == b'{"a":1}'
    chunks = [_chunk(b"ab", True), _chunk(b"", True), _chunk(b"cd", False)]
    assert await read_body(_request(chunks, []), 100) == b"abcd"
    assert await read_body(_request([{"type": "http.request"}], []), 100) == b""


async def test_a_body_over_the_limit_is_refused_declared_or_not() -> None:
    declared = [(b"content-length", b"101")]
    assert await read_body(_request([_chunk(b"x", False)], declared), 100) is None
    chunks = [_chunk(b"x" * 60, True), _chunk(b"x" * 60, False)]
    assert await read_body(_request(chunks, []), 100) is None
    assert await read_body(_request([_chunk(b"x" * 100, False)], []), 100) == b"x" * 100


async def test_a_client_that_leaves_mid_body_raises_client_disconnect() -> None:
    messages = [_chunk(b"ab", True), {"type": "http.disconnect"}]
    with pytest.raises(ClientDisconnect):
        await read_body(_request(messages, []), 100)


@pytest.mark.parametrize(
    ("accept", "json_ok", "sse_ok"),
    [
        ("application/json, text/event-stream", True, True),
        ("application/json", True, False),
        ("text/*", False, True),
        ("*/*;q=0.1", True, True),
        ("APPLICATION/JSON; charset=utf-8", True, False),
        ("", False, False),
        ("text/html", False, False),
    ],
)
async def test_accept_verdicts_are_the_same_asked_once_or_again(
    accept: str, json_ok: bool, sse_ok: bool
) -> None:
    for _ in range(2):  # the second answer comes from the remembered verdicts
        request = _request([], [(b"accept", accept.encode())])
        assert accepts(request, "application/json") is json_ok
        assert accepts(request, "text/event-stream") is sse_ok
