"""Who may send which MCP request: scopes for signed-in callers, public items for anonymous ones.

MCP 2025-11-25 "Authorization" §Scope Challenge Handling and RFC 6750 §3.1: a signed-in caller
lacking a scope gets 403 ``insufficient_scope``; an anonymous caller (no ``Authorization``
header, only on a server offering public tools, prompts or resources) asking for anything not
public gets 401 without an error code and the scopes it needs, so that its client signs in
(step-up from anonymous). An anonymous request for an unknown name gets the same 401 as one
for a protected name: names that are not public are not revealed.
"""

from __future__ import annotations

from typing import Any

from resourceserver.errors import InsufficientScopeError, SignInRequiredError
from resourceserver.mcp.jsonrpc import JsonRpcError, Request
from resourceserver.mcp.registry import Registry
from resourceserver.principal import Principal

#: Methods an anonymous caller may always send (lists show public items only).
ANONYMOUS_METHODS = frozenset(
    {
        "initialize",
        "ping",
        "logging/setLevel",
        "server/discover",
        "tools/list",
        "prompts/list",
        "resources/list",
        "resources/templates/list",
    }
)
#: Methods naming one resource by ``params.uri``.
_RESOURCE_METHODS = frozenset({"resources/read", "resources/subscribe", "resources/unsubscribe"})


def visible(item: Any, principal: Principal) -> bool:
    """True when ``principal`` may see ``item`` (a tool, prompt, resource or template)."""
    if principal.anonymous:
        return bool(item.public)
    return principal.has_scopes(getattr(item, "scopes", frozenset()))


def required_scopes(registry: Registry, base_scope: str, request: Request) -> frozenset[str]:
    """Scopes a signed-in caller must hold for ``request`` (base scope and the tool's)."""
    needed = {base_scope} if base_scope else set()
    if request.method == "tools/call":
        tool = registry.tools.get(str(request.params.get("name")))
        if tool is not None:
            needed |= tool.scopes
    return frozenset(needed)


def denial(
    registry: Registry, base_scope: str, request: Request, principal: Principal
) -> InsufficientScopeError | None:
    """Why ``principal`` may not send ``request`` (None: it may)."""
    required = required_scopes(registry, base_scope, request)
    if not principal.anonymous:
        return None if principal.has_scopes(required) else InsufficientScopeError(required)
    return None if public_request(registry, request) else SignInRequiredError(required)


def public_request(registry: Registry, request: Request) -> bool:
    """True when ``request`` only touches what is public."""
    method, params = request.method, request.params
    if method in ANONYMOUS_METHODS:
        return True
    if method == "tools/call":
        tool = registry.tools.get(str(params.get("name")))
        return tool is not None and tool.public
    if method == "prompts/get":
        prompt = registry.prompts.get(str(params.get("name")))
        return prompt is not None and prompt.public
    if method in _RESOURCE_METHODS:
        return _public_resource(registry, params.get("uri"))
    if method == "completion/complete":
        return _public_reference(registry, params.get("ref"))
    return False  # tasks, subscriptions/listen: they belong to one principal


def _public_resource(registry: Registry, uri: object) -> bool:
    if not isinstance(uri, str):
        return False
    try:
        found, _variables = registry.find_resource(uri)
    except JsonRpcError:
        return False
    return found.public


def _public_reference(registry: Registry, ref: object) -> bool:
    if not isinstance(ref, dict):
        return False
    if ref.get("type") == "ref/prompt":
        prompt = registry.prompts.get(str(ref.get("name")))
        return prompt is not None and prompt.public
    template = registry.templates.get(str(ref.get("uri")))
    return template is not None and template.public
