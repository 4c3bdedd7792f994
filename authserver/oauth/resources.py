"""Resource indicators (RFC 8707 §2) for the deployment's MCP resource.

A ``resource`` is canonicalised (lower-case scheme and host, default port dropped, empty path
kept as-is) and compared exactly with the configured MCP URL — never by prefix (S29). Clients
that omit it get the deployment's default resource (S30); a query string some clients append is
ignored for matching (REAL-CLIENTS §4), while the token's ``aud`` is always the canonical URL.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit, urlunsplit

from authserver.config.settings import CharterSettings
from authserver.errors import InvalidTargetError

DEFAULT_PORTS = {"http": 80, "https": 443}
MAX_RESOURCE_LENGTH = 2048


def canonical_resource(value: str, *, drop_query: bool = True) -> str:
    """The canonical form of an absolute resource URI; raises ``invalid_target`` otherwise."""
    if not value or len(value) > MAX_RESOURCE_LENGTH:
        raise InvalidTargetError("resource must be an absolute URI")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise InvalidTargetError("resource is not a valid URI") from exc
    if parts.scheme.lower() not in DEFAULT_PORTS or not parts.hostname:
        raise InvalidTargetError("resource must be an absolute http(s) URI")
    if "#" in value:
        raise InvalidTargetError("resource must not contain a fragment (RFC 8707 §2)")
    if parts.username is not None or parts.password is not None:
        raise InvalidTargetError("resource must not contain user information")
    scheme = parts.scheme.lower()
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port in (None, DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    query = "" if drop_query else parts.query
    return urlunsplit((scheme, netloc, parts.path, query, ""))


def known_resources(settings: CharterSettings) -> list[str]:
    """The canonical URL of every MCP server of the deployment, the default one first."""
    return [canonical_resource(url) for url in settings.resource_names()]


def resolve_resource(settings: CharterSettings, values: Sequence[str]) -> str:
    """The one resource a request targets, canonical; the default when none was sent.

    Several values, or one that is none of this deployment's MCP resources (the default one
    and those of ``CHARTER_MCP_SERVERS_FILE``), give ``invalid_target``.
    """
    if len(values) > 1:
        raise InvalidTargetError("exactly one resource may be requested")
    known = known_resources(settings)
    if not values or values[0] == "":
        return known[0]
    requested = canonical_resource(values[0])
    if requested not in known:
        raise InvalidTargetError(
            "unknown resource; this server issues tokens for " + " ".join(known),
            detail=f"requested {values[0]!r}",
        )
    return requested
