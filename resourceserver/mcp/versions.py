"""MCP protocol revisions this server speaks and their negotiation.

MCP 2025-11-25 "Lifecycle" §Version Negotiation.
"""

from __future__ import annotations

#: Newest first.
SUPPORTED_VERSIONS: tuple[str, ...] = ("2025-11-25", "2025-06-18", "2025-03-26")
LATEST_VERSION = SUPPORTED_VERSIONS[0]
#: Assumed when a request after initialization carries no ``MCP-Protocol-Version`` header
#: (MCP 2025-06-18 "Transports" §Protocol Version Header).
DEFAULT_HEADER_VERSION = "2025-03-26"


def negotiate(requested: object) -> str:
    """Echo the client's version when supported, else offer the latest one."""
    if isinstance(requested, str) and requested in SUPPORTED_VERSIONS:
        return requested
    return LATEST_VERSION


def is_supported(version: str) -> bool:
    """True for a revision this server implements."""
    return version in SUPPORTED_VERSIONS
