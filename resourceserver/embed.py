"""Embedding the protected MCP server in an existing ASGI application (Starlette, FastAPI).

:func:`protected_mcp` builds the MCP server alone: the Streamable HTTP endpoint at the path of
``settings.resource_url`` and its protected resource metadata (RFC 9728 §3) under
``/.well-known/``. Callers are authenticated by bearer tokens (a ``verifier``, or the issuer's
``jwks_url``: Charter's authorization server or any other issuing RFC 9068 JWTs) or, with
``host_authentication=True``, by the host's own Starlette ``AuthenticationMiddleware``
(:mod:`resourceserver.host_auth`). The host keeps its routes, middleware and lifespan::

    mcp = protected_mcp(registry, settings=settings, engine=engine, jwks_url=...)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        async with mcp.lifespan():  # a mounted app's own lifespan does not run
            yield

    app = Starlette(routes=[*host_routes, Mount("/", app=mcp.app)], lifespan=lifespan)

Mount it **last**: it answers only its own paths (and 404 for the rest).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy import Engine
from starlette.applications import Starlette

from resourceserver.app import create_app
from resourceserver.jwks import RemoteJwksSource
from resourceserver.mcp.registry import Registry
from resourceserver.mcp.transport import McpEndpoint, TransportOptions
from resourceserver.settings import ResourceServerSettings
from resourceserver.storage import create_tables
from resourceserver.verifier import JwtTokenVerifier, TokenVerifier

__all__ = ["EmbeddedMcp", "protected_mcp"]


@dataclass(frozen=True)
class EmbeddedMcp:
    """The MCP server to mount in a host application."""

    #: Mount at ``/`` after the host's own routes.
    app: Starlette
    settings: ResourceServerSettings

    @property
    def endpoint(self) -> McpEndpoint:
        """The endpoint (``notify_resource_updated``, ``notify_list_changed``, ``drain``)."""
        endpoint: McpEndpoint = self.app.state.mcp_endpoint
        return endpoint

    @asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        """Enter inside the host's lifespan: ends streams and running work at shutdown."""
        async with self.app.router.lifespan_context(self.app):
            yield


def protected_mcp(
    registry: Registry,
    *,
    settings: ResourceServerSettings,
    engine: Engine,
    verifier: TokenVerifier | None = None,
    jwks_url: str | None = None,
    host_authentication: bool = False,
    options: TransportOptions | None = None,
    request_state_keys: Sequence[bytes] | None = None,
) -> EmbeddedMcp:
    """The MCP server for ``registry``; its tables are created in ``engine`` when missing.

    Exactly one way to authenticate: ``host_authentication``, a ``verifier``, or ``jwks_url``.
    Several workers need the same ``request_state_keys`` (see :func:`create_app`).
    """
    chosen = [host_authentication, verifier is not None, jwks_url is not None]
    if sum(chosen) != 1:
        raise ValueError("give exactly one of host_authentication=True, verifier= or jwks_url=")
    if jwks_url is not None:
        verifier = JwtTokenVerifier(settings, RemoteJwksSource(jwks_url))
    create_tables(engine)
    app = create_app(
        settings,
        verifier,
        registry,
        engine,
        options=options,
        request_state_keys=request_state_keys,
        host_authentication=host_authentication,
    )
    return EmbeddedMcp(app, settings)
