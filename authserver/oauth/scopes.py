"""Scope policy (RFC 6749 §3.3): what a client may be granted."""

from __future__ import annotations

from authserver.config.settings import CharterSettings
from authserver.errors import InvalidScopeError
from authserver.storage.client_rows import ClientState
from authserver.storage.models import Client, ClientKind

MAX_SCOPE_LENGTH = 1024


def parse_scope(value: str | None) -> list[str]:
    """Split a space-separated scope string, keeping first-seen order and dropping repeats."""
    if value is None:
        return []
    if len(value) > MAX_SCOPE_LENGTH:
        raise InvalidScopeError("scope is too long")
    seen: dict[str, None] = {}
    for item in value.split(" "):
        if item:
            seen.setdefault(item, None)
    return list(seen)


def allowed_scopes(settings: CharterSettings, client: Client | ClientState) -> set[str]:
    """Scopes the client may be granted: its registered ``scope`` or every supported scope.

    Only an administrator's ``scope`` (static clients) limits a client. A self-registered
    client (DCR, metadata document) names in ``scope`` what it wanted when it registered,
    not a boundary (it could register again with more); MCP clients register with the scope
    of the first challenge and later step up (403 ``insufficient_scope``), so that scope must
    not refuse the step-up. The user's consent is what bounds them.
    """
    supported = set(settings.scopes_supported)
    registered = set(parse_scope(client.scope)) if client.kind == ClientKind.STATIC else set()
    return registered & supported if registered else supported


def resolve_scope(
    settings: CharterSettings, client: Client | ClientState, requested: str | None
) -> str:
    """The scope to grant (S9).

    Nothing requested → the default scope (within what the client may have). A request for
    scopes unknown to the server or outside the client's set → ``invalid_scope``.
    """
    allowed = allowed_scopes(settings, client)
    wanted = parse_scope(requested)
    if not wanted:
        default = [item for item in parse_scope(settings.default_scope) if item in allowed]
        if not default:
            raise InvalidScopeError("no scope requested and no default scope is allowed")
        return " ".join(default)
    refused = [item for item in wanted if item not in allowed]
    if refused:
        raise InvalidScopeError(
            "scope not allowed for this client: " + " ".join(refused),
            detail=f"allowed={sorted(allowed)}",
        )
    return " ".join(wanted)


def is_narrowing(requested: str, granted: str) -> bool:
    """True when every scope in ``requested`` is in ``granted`` (refresh may only narrow, S26)."""
    return set(parse_scope(requested)) <= set(parse_scope(granted))
