"""The MCP server's JSON: orjson where it can, the standard library otherwise, and the same
meaning either way (outgoing messages and incoming bodies)."""

from __future__ import annotations

import json

import pytest

from resourceserver.mcp.codec import dumps_bytes, dumps_text, loads_body


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


def _read(reader: object, body: bytes) -> str:
    try:
        return repr(reader(body))  # type: ignore[operator]
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        return f"raises {type(exc).__name__}"


@pytest.mark.parametrize(
    "body",
    [
        b'{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{}}}',
        b'{"id": 123456789012345678901234567890}',  # beyond 64 bits: orjson would give a float
        b'{"id": 9223372036854775807, "n": -9223372036854775809}',
        b"18446744073709551616",
        b'{"text": "a run of digits 12345678901234567890 inside a string"}',
        b"[1e400, -0, 0.1, 1.5e-7]",
        b"NaN",
        b'["\\ud800 a lone surrogate"]',
        b'\xef\xbb\xbf{"bom": true}',
        '{"utf16": 1}'.encode("utf-16"),
        b'{"a": 1, "a": 2}',
        b"[" * 5000 + b"]" * 5000,
        b'{"unterminated": ',
        b"\xff\xfe garbage",
        '{"h\u00e9llo": "\u2713"}'.encode(),
    ],
)
def test_codec_reads_bodies_as_the_standard_library_does(body: bytes) -> None:
    assert _read(loads_body, body) == _read(json.loads, body)
