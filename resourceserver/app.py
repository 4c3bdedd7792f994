"""The protected MCP server as one Starlette app (MCP 2025-11-25 and 2026-07-28 "Transports",
"Authorization").

Layers, outermost first: the Origin/Host guard (DNS rebinding), bearer authentication of the
MCP path (RFC 6750, RFC 9728 challenges), then the routes: protected resource metadata
(RFC 9728 §3) and the Streamable HTTP endpoint.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from resourceserver.anonymous import AnonymousLimiter
from resourceserver.auth import BearerAuthMiddleware, challenge_response
from resourceserver.host_auth import HostAuthMiddleware
from resourceserver.mcp.registry import Registry
from resourceserver.mcp.request_state import RequestStateSealer
from resourceserver.mcp.transport import McpEndpoint, TransportOptions
from resourceserver.metadata import metadata_routes
from resourceserver.origin import OriginGuard
from resourceserver.settings import ResourceServerSettings
from resourceserver.storage import Database
from resourceserver.verifier import TokenVerifier

logger = logging.getLogger("charter.resourceserver")


async def database_unavailable(_request: Request, exc: Exception) -> Response:
    """The session store is unreachable: 503 with ``Retry-After`` rather than a bare 500 (S61)."""
    logger.error("database error on the MCP path: %s", type(exc).__name__)
    return JSONResponse(
        {"error": "temporarily_unavailable", "error_description": "try again shortly"},
        status_code=503,
        headers={"Retry-After": "5", "Cache-Control": "no-store"},
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
) -> Starlette:
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
    anonymous = (
        AnonymousLimiter(settings.anonymous_rate_per_minute) if registry.has_public() else None
    )
    if host_authentication:
        authentication = Middleware(HostAuthMiddleware, settings=settings, anonymous=anonymous)
    elif verifier is not None:
        authentication = Middleware(
            BearerAuthMiddleware, settings=settings, verifier=verifier, anonymous=anonymous
        )
    else:
        raise ValueError("a token verifier is needed unless host_authentication is set")
    middleware = [Middleware(OriginGuard, settings=settings), authentication]
    app = Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={DBAPIError: database_unavailable},
    )
    app.state.mcp_endpoint = endpoint
    return app
