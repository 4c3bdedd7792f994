"""The MCP protocol and tool errors, under the resource server's one root,
:class:`~resourceserver.errors.McpError`.

JSON-RPC 2.0 §5.1 and MCP 2026-07-28 "Overview" §Error Codes (the codes), "Tools" §Error
Handling (protocol errors versus tool execution errors).

- :class:`JsonRpcError`: a protocol error, answered with a JSON-RPC ``error`` object. Its
  subclasses name the MCP 2026-07-28 codes (``-32020`` … ``-32022``).
- :class:`ToolError` (and :class:`ClientRequestError`): a tool execution error, answered with a
  result whose ``isError`` is true and whose text tells the caller what to change.
- :class:`DefinitionError` and :class:`ToolModuleError`: a tool, prompt or resource that
  cannot be registered or loaded, raised at start-up, never on the wire.

They also keep the built-in base they had before (``TypeError``, ``ImportError``), so
existing ``except`` clauses keep working.
"""

from __future__ import annotations

from typing import Any

from resourceserver.errors import McpError

__all__ = [
    "HEADER_MISMATCH",
    "INTERNAL_ERROR",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "METHOD_NOT_FOUND",
    "MISSING_REQUIRED_CLIENT_CAPABILITY",
    "PARSE_ERROR",
    "REQUEST_CANCELLED",
    "RESOURCE_NOT_FOUND",
    "UNSUPPORTED_PROTOCOL_VERSION",
    "ClientRequestError",
    "DefinitionError",
    "HeaderMismatchError",
    "JsonRpcError",
    "McpError",
    "MissingClientCapabilityError",
    "ToolError",
    "ToolModuleError",
    "UnsupportedVersionError",
]

#: JSON-RPC 2.0 §5.1 error codes.
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
#: MCP ≤ 2025-11-25: a resource that does not exist (2026-07-28 uses -32602 with data.uri).
RESOURCE_NOT_FOUND = -32002
#: MCP 2026-07-28: HTTP headers disagree with the body, or a required one is missing.
HEADER_MISMATCH = -32020
#: MCP 2026-07-28: the request needs a client capability the request did not declare.
MISSING_REQUIRED_CLIENT_CAPABILITY = -32021
#: MCP 2026-07-28: the request's protocol version is not one this server speaks.
UNSUPPORTED_PROTOCOL_VERSION = -32022
#: MCP ≤ 2025-11-25 (cancellation of a handshake-era request).
REQUEST_CANCELLED = -32800


class JsonRpcError(McpError):
    """A protocol-level failure answered with a JSON-RPC ``error`` object."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_json(self) -> dict[str, Any]:
        """The ``error`` member."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


class HeaderMismatchError(JsonRpcError):
    """``-32020``: a Streamable HTTP request header disagrees with the body (or is missing)."""

    def __init__(self, message: str) -> None:
        super().__init__(HEADER_MISMATCH, f"Header mismatch: {message}")


class MissingClientCapabilityError(JsonRpcError):
    """``-32021``: serving the request needs capabilities the request did not declare."""

    def __init__(self, required: dict[str, Any], what: str) -> None:
        super().__init__(
            MISSING_REQUIRED_CLIENT_CAPABILITY,
            f"Missing required client capability: {what}",
            {"requiredCapabilities": required},
        )


class UnsupportedVersionError(JsonRpcError):
    """``-32022``: the request's protocol version is not supported; ``data`` lists ours."""

    def __init__(self, requested: str, supported: tuple[str, ...]) -> None:
        super().__init__(
            UNSUPPORTED_PROTOCOL_VERSION,
            "Unsupported protocol version",
            {"supported": list(supported), "requested": requested},
        )


class ToolError(McpError):
    """Raise from a tool to answer ``isError: true`` with this message.

    Say what the caller should change.
    """


class ClientRequestError(ToolError):
    """A request to the client failed, was refused, or the client cannot serve it."""


class DefinitionError(McpError, TypeError):
    """A tool, prompt or resource function cannot be registered as written."""


class ToolModuleError(McpError, ImportError):
    """A tool module named in the configuration cannot be loaded."""
