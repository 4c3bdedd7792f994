"""The MCP server's outgoing JSON: orjson's bytes where it can, the standard library's
otherwise, and the same meaning either way."""

from __future__ import annotations

import json

import pytest

from resourceserver.mcp.codec import dumps_bytes, dumps_text


@pytest.mark.parametrize(
    "message",
    [
        {"jsonrpc": "2.0", "id": 1, "result": {"content": [{"type": "text", "text": "héllo ✓"}]}},
        {"jsonrpc": "2.0", "id": "abc", "error": {"code": -32602, "message": "bad"}},
        {"id": 2**70, "note": "an id beyond 64 bits"},
        {1: "a non-string key", "nested": [1.5, None, True]},
    ],
)
def test_codec_output_means_what_the_standard_library_writes(message: object) -> None:
    expected = json.dumps(message, ensure_ascii=False, separators=(",", ":"))
    assert json.loads(dumps_bytes(message)) == json.loads(expected)
    assert json.loads(dumps_text(message)) == json.loads(expected)
    assert b"\\u" not in dumps_bytes(message)  # UTF-8, not ASCII escapes
    assert b": " not in dumps_bytes(message) and b", " not in dumps_bytes(message)


def test_codec_keeps_big_integers_exact() -> None:
    assert dumps_bytes({"id": 2**70}) == b'{"id":1180591620717411303424}'
