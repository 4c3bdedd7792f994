"""The protected MCP server as one Starlette app (MCP 2025-11-25 and 2026-07-28 "Transports",
"Authorization").

Layers, outermost first: the Origin/Host guard (DNS rebinding), bearer authentication of the
MCP path (RFC 6750, RFC 9728 challenges), then the routes: protected resource metadata
(RFC 9728 §3), the Streamable HTTP endpoint and, unless ``settings.legacy_sse`` is off, the
2024-11-05 HTTP+SSE endpoints beside it (:mod:`resourceserver.mcp.legacy_sse`). Requests for
the MCP path (and those two) take the same layers without the router
(:mod:`resourceserver.direct`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Collection, Sequence
from contextlib import asynccontextmanager

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route
from starlette.types import ASGIApp

from resourceserver.anonymous import AnonymousLimiter
from resourceserver.auth import BearerAuthMiddleware, challenge_response
from resourceserver.direct import DirectPaths, database_unavailable, mcp_stack
from resourceserver.host_auth import HostAuthMiddleware
from resourceserver.mcp.legacy_sse import LegacySse
from resourceserver.mcp.registry import Registry
from resourceserver.mcp.request_state import RequestStateSealer
from resourceserver.mcp.transport import McpEndpoint, TransportOptions
from resourceserver.metadata import metadata_routes
from resourceserver.origin import OriginGuard
from resourceserver.settings import ResourceServerSettings
from resourceserver.storage import Database
from resourceserver.verifier import TokenVerifier


def authentication_for(
    settings: ResourceServerSettings,
    verifier: TokenVerifier | None,
    anonymous: AnonymousLimiter | None,
    host_authentication: bool,
    paths: Collection[str] | None = None,
) -> Callable[[ASGIApp], ASGIApp]:
    """Wraps the MCP path (and the other ``paths``) in its authentication: the host's
    (``request.user``) or bearer tokens; either lets anonymous callers through (within
    ``anonymous``) when it is given (S83)."""
    if host_authentication:
        return lambda app: HostAuthMiddleware(
            app, settings=settings, protected_paths=paths, anonymous=anonymous
        )
    if verifier is None:
        raise ValueError("a token verifier is needed unless host_authentication is set")
    checked = verifier
    return lambda app: BearerAuthMiddleware(
        app, settings=settings, verifier=checked, protected_paths=paths, anonymous=anonymous
    )


def create_app(
    settings: ResourceServerSettings,
    verifier: TokenVerifier | None,
    registry: Registry,
    engine: Engine,
    *,
    options: TransportOptions | None = None,
    request_state_keys: Sequence[bytes] | None = None,
    host_authentication: bool = False,
) -> DirectPaths:
    """Build the resource server. The engine's database must hold :mod:`resourceserver.storage`.

    With ``host_authentication`` the caller comes from the host application's Starlette
    ``AuthenticationMiddleware`` (:mod:`resourceserver.host_auth`) and ``verifier`` is unused;
    otherwise bearer tokens are checked by ``verifier``.

    ``request_state_keys`` seal the 2026-07-28 ``requestState`` (32 bytes each, the first
    seals, all open; see :func:`resourceserver.mcp.request_state.derive_key`). Every worker of
    a deployment needs the same keys; without them a random key is made, which only this
    process can open.
    """
    if options is None:
        options = TransportOptions(session_ttl_seconds=settings.session_ttl_seconds)
    sealer = (
        RequestStateSealer(request_state_keys, ttl_seconds=options.request_state_ttl_seconds)
        if request_state_keys
        else None
    )

    endpoint = McpEndpoint(
        registry=registry,
        database=Database(engine),
        forbidden=lambda error: challenge_response(settings, error),
        base_scope=settings.base_scope,
        options=options,
        sealer=sealer,
    )

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await endpoint.aclose()

    routes = [
        *metadata_routes(settings),
        Route(settings.resource_path, endpoint, methods=["GET", "POST", "DELETE"]),
    ]
    # The 2024-11-05 HTTP+SSE transport beside the MCP path, behind the same layers.
    legacy = (
        LegacySse(
            endpoint, resource_url=settings.resource_url, resource_path=settings.resource_path
        )
        if settings.legacy_sse
        else None
    )
    legacy_apps = {legacy.sse_path: legacy.stream_app} if legacy else {}
    if legacy:
        legacy_apps[legacy.messages_path] = legacy.messages_app
        routes += [Route(path, app) for path, app in legacy_apps.items()]
    anonymous = (
        AnonymousLimiter(settings.anonymous_rate_per_minute) if registry.has_public() else None
    )
    authenticate = authentication_for(
        settings,
        verifier,
        anonymous,
        host_authentication,
        paths=[settings.resource_path, *legacy_apps],
    )
    middleware = [Middleware(OriginGuard, settings=settings), Middleware(authenticate)]
    app = DirectPaths(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={DBAPIError: database_unavailable},
    )
    app.state.mcp_endpoint = endpoint
    app.state.anonymous_limiter = anonymous
    # The MCP path skips the router and Starlette's middleware (same layers, see direct.py).
    app.direct[settings.resource_path] = mcp_stack(endpoint, settings, authenticate)
    for path, legacy_app in legacy_apps.items():
        app.direct[path] = mcp_stack(legacy_app, settings, authenticate)
    return app
