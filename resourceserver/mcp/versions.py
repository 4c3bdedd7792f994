"""MCP protocol revisions this server speaks, and which era a request belongs to.

MCP 2025-11-25 "Lifecycle" §Version Negotiation (the handshake era); MCP 2026-07-28
"Versioning and Compatibility" (the modern era: every request names its version, a dual-era
server picks its behaviour per request) and "Streamable HTTP" §Protocol Version Header.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Revisions served statelessly, every request carrying its version in ``_meta``; newest first.
MODERN_VERSIONS: tuple[str, ...] = ("2026-07-28",)
#: Revisions negotiated with ``initialize`` and served in a session; newest first.
SUPPORTED_VERSIONS: tuple[str, ...] = ("2025-11-25", "2025-06-18", "2025-03-26")
HANDSHAKE_VERSIONS = SUPPORTED_VERSIONS
LATEST_VERSION = SUPPORTED_VERSIONS[0]
LATEST_MODERN_VERSION = MODERN_VERSIONS[0]
#: Everything this server speaks, newest first (``server/discover``, ``-32022`` data).
ALL_VERSIONS: tuple[str, ...] = (*MODERN_VERSIONS, *SUPPORTED_VERSIONS)
#: Assumed when a request after initialization carries no ``MCP-Protocol-Version`` header
#: (MCP 2025-06-18 "Transports" §Protocol Version Header).
DEFAULT_HEADER_VERSION = "2025-03-26"
#: ``_meta`` key naming a modern request's protocol version (MCP 2026-07-28 "Overview" §_meta).
PROTOCOL_VERSION_KEY = "io.modelcontextprotocol/protocolVersion"


def negotiate(requested: object) -> str:
    """Echo the client's version when supported, else offer the latest handshake version."""
    if isinstance(requested, str) and requested in SUPPORTED_VERSIONS:
        return requested
    return LATEST_VERSION


def is_supported(version: str) -> bool:
    """True for a handshake-era revision this server implements."""
    return version in SUPPORTED_VERSIONS


def is_modern_request(headers: Mapping[str, str], body: Any) -> bool:
    """Whether one POSTed JSON-RPC object belongs to the stateless (2026-07-28) era.

    Modern when the ``MCP-Protocol-Version`` header names a modern revision, or the body's
    ``_meta`` names any protocol version. Without either, ``initialize`` and requests with a
    session id are handshake-era; anything else naming an unknown revision in the header is
    treated as modern, so that it is answered with the modern errors (``-32602``/``-32022``).
    """
    header = headers.get("mcp-protocol-version")
    if header in MODERN_VERSIONS:
        return True
    params = body.get("params") if isinstance(body, dict) else None
    meta = params.get("_meta") if isinstance(params, dict) else None
    if isinstance(meta, dict) and PROTOCOL_VERSION_KEY in meta:
        return True
    if "mcp-session-id" in headers or not isinstance(body, dict):
        return False
    if body.get("method") == "initialize" or header is None:
        return False
    return header not in SUPPORTED_VERSIONS
