"""The per-request envelope of a 2026-07-28 request: protocol version, client capabilities,
client identity and log level, read from ``params._meta`` and checked on every request.

MCP 2026-07-28 "Overview" §_meta (per-request protocol fields: a request missing a required
field is malformed, ``-32602`` and HTTP 400), "Versioning and Compatibility" §Protocol Version
Negotiation (``-32022`` with the supported versions) and "Streamable HTTP" §Protocol Version
Header (the header must equal the ``_meta`` version, else ``-32020``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field
from typing import Any

from resourceserver.mcp.context import LOG_LEVELS
from resourceserver.mcp.errors import (
    INVALID_PARAMS,
    HeaderMismatchError,
    JsonRpcError,
    UnsupportedVersionError,
)
from resourceserver.mcp.jsonrpc import Request
from resourceserver.mcp.versions import ALL_VERSIONS, MODERN_VERSIONS, PROTOCOL_VERSION_KEY
from resourceserver.records import record

JsonObject = dict[str, Any]

CLIENT_INFO_KEY = "io.modelcontextprotocol/clientInfo"
CLIENT_CAPABILITIES_KEY = "io.modelcontextprotocol/clientCapabilities"
LOG_LEVEL_KEY = "io.modelcontextprotocol/logLevel"
SERVER_INFO_KEY = "io.modelcontextprotocol/serverInfo"
SUBSCRIPTION_ID_KEY = "io.modelcontextprotocol/subscriptionId"
#: Longest protocol version string echoed back in ``data.requested``.
MAX_VERSION_LENGTH = 64
#: Longest client name or version kept from ``clientInfo``.
MAX_INFO_LENGTH = 256


@record
class Envelope:
    """What a modern request says about itself, validated."""

    protocol_version: str
    client_capabilities: JsonObject = field(default_factory=dict)
    client_info: JsonObject = field(default_factory=dict)
    log_level: str | None = None

    def declares_extension(self, identifier: str) -> bool:
        """True when ``capabilities.extensions`` names ``identifier``."""
        extensions = self.client_capabilities.get("extensions")
        return isinstance(extensions, dict) and isinstance(extensions.get(identifier), dict)


def _invalid(message: str) -> JsonRpcError:
    return JsonRpcError(INVALID_PARAMS, f"Invalid params: {message}")


def _meta_of(request: Request) -> Mapping[str, Any]:
    meta = request.params.get("_meta")
    if not isinstance(meta, dict):
        raise _invalid(
            "_meta is required on every request of protocol 2026-07-28, with "
            f"'{PROTOCOL_VERSION_KEY}' and '{CLIENT_CAPABILITIES_KEY}'"
        )
    return meta


def _client_info(meta: Mapping[str, Any]) -> JsonObject:
    info = meta.get(CLIENT_INFO_KEY)
    if info is None:
        return {}
    valid = isinstance(info, dict) and all(
        isinstance(info.get(key), str) and 0 < len(info[key]) <= MAX_INFO_LENGTH
        for key in ("name", "version")
    )
    if not valid:
        raise _invalid(f"'{CLIENT_INFO_KEY}' must be an object with string 'name' and 'version'")
    assert isinstance(info, dict)  # noqa: S101 - checked above, for the type checker
    return {"name": info["name"], "version": info["version"]}


def _log_level(meta: Mapping[str, Any]) -> str | None:
    level = meta.get(LOG_LEVEL_KEY)
    if level is None:
        return None
    if level not in LOG_LEVELS:
        raise _invalid(f"'{LOG_LEVEL_KEY}' must be one of {', '.join(LOG_LEVELS)}")
    return str(level)


def read_envelope(request: Request, version_header: str | None) -> Envelope:
    """Validate the envelope of ``request`` (raises ``JsonRpcError``; every code is HTTP 400).

    Order: malformed ``_meta`` (``-32602``), header disagreeing with it (``-32020``), an
    unsupported version (``-32022``).
    """
    meta = _meta_of(request)
    version = meta.get(PROTOCOL_VERSION_KEY)
    if not isinstance(version, str) or not 0 < len(version) <= MAX_VERSION_LENGTH:
        raise _invalid(f"'{PROTOCOL_VERSION_KEY}' must be a protocol version string")
    capabilities = meta.get(CLIENT_CAPABILITIES_KEY)
    if not isinstance(capabilities, dict):
        raise _invalid(f"'{CLIENT_CAPABILITIES_KEY}' must be an object ({{}} declares none)")
    info = _client_info(meta)
    level = _log_level(meta)
    if version_header is None:
        raise HeaderMismatchError("the MCP-Protocol-Version header is required")
    if version_header != version:
        raise HeaderMismatchError(
            f"MCP-Protocol-Version header '{version_header[:MAX_VERSION_LENGTH]}' does not "
            f"match _meta '{PROTOCOL_VERSION_KEY}' '{version}'"
        )
    if version not in MODERN_VERSIONS:
        raise UnsupportedVersionError(version, ALL_VERSIONS)
    return Envelope(version, capabilities, info, level)
