"""Control-flow signals raised inside a handler that are not the tool's own errors.

MCP 2026-07-28 "Multi Round-Trip Requests" (a question the client must answer before the
request can finish) and "Overview" §_meta (a capability the request did not declare).

They derive from ``BaseException``, like ``asyncio.CancelledError``, so that a tool's own
``except Exception`` cannot swallow them: they travel up to the dispatcher, which turns them
into an ``InputRequiredResult`` or a JSON-RPC error instead of an ``isError`` result.
"""

from __future__ import annotations

from typing import Any

from resourceserver.mcp.errors import JsonRpcError

JsonObject = dict[str, Any]


class Interrupt(BaseException):
    """Base of the signals below."""


class InputRequired(Interrupt):
    """The handler asked something the request did not answer (yet)."""


class ProtocolFault(Interrupt):
    """The request cannot be served; answer with ``error`` (a JSON-RPC error)."""

    def __init__(self, error: JsonRpcError) -> None:
        super().__init__(error.message)
        self.error = error
