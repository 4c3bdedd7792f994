"""JSON text of the MCP server's outgoing messages (RFC 8259; JSON-RPC 2.0).

orjson writes them when it can: the standard library's encoder was the largest JSON cost of
the hot path (issue 10). What orjson refuses (non-string keys, integers beyond 64 bits, other
types) goes through :func:`json.dumps` as before, so the output never changes meaning: compact
separators, UTF-8, not ASCII-escaped. Incoming bodies stay with :func:`json.loads`: orjson
reads integers beyond 64 bits as floats, which would change a JSON-RPC ``id``.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def dumps_bytes(message: Any) -> bytes:
    """``message`` as compact UTF-8 JSON."""
    try:
        return orjson.dumps(message)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode()


def dumps_text(message: Any) -> str:
    """``message`` as compact JSON text."""
    try:
        return orjson.dumps(message).decode()
    except TypeError:
        return json.dumps(message, ensure_ascii=False, separators=(",", ":"))
