"""JSON text of the MCP server's outgoing messages (RFC 8259; JSON-RPC 2.0).

orjson writes them when it can: the standard library's encoder was the largest JSON cost of
the hot path (issue 10). What orjson refuses (non-string keys, integers beyond 64 bits, other
types) goes through :func:`json.dumps` as before, so the output never changes meaning: compact
separators, UTF-8, not ASCII-escaped.

Incoming bodies are read by orjson too (:func:`loads_body`), but only where it cannot differ
from :func:`json.loads`: orjson reads integers beyond 64 bits as floats (which would change a
JSON-RPC ``id``), so a body with a run of 19 or more digits goes to :func:`json.loads`, as does
every body orjson refuses (``NaN``, lone surrogates, a byte-order mark, UTF-16, very deep
nesting): the standard library then accepts it or raises exactly as it always did.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

#: Every digit as ``0``: a body holds a run of 19 digits (long enough for an integer orjson
#: would turn into a float, beyond 2**63) when its translation holds :data:`_LONG_RUN`.
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_RUN = b"0" * 19


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


def loads_body(body: bytes) -> Any:
    """A request body's JSON value, as :func:`json.loads` reads it (raises what it raises)."""
    if _LONG_RUN not in body.translate(_DIGITS_AS_ZERO):
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
    return json.loads(body)
