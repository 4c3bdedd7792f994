"""Resource-server-only mode: the protected MCP server alone in front of an external
authorization server (``authorization_server`` set). No authorization-server routes, tables or
keys; tokens are checked by the issuer's JWKS or by RFC 7662 introspection, every outbound
request through the SSRF guard (:mod:`authserver.federation.outbound`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from sqlalchemy import Engine, text
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount

from authserver.config.settings import CharterSettings
from authserver.deployment.parts import build_registry, request_state_keys, transport_options_for
from authserver.federation.outbound import GuardedFetcher, external_fetch_policy
from authserver.ops.clean_exit import chain_exit_signals
from authserver.ops.gc_tuning import tune_for_serving
from authserver.ops.health import QUIET_PATHS
from authserver.ops.logging_setup import RequestIdMiddleware
from authserver.ops.metrics import RouteLabels
from authserver.ops.tracing import flush as flush_traces
from authserver.ops.tracing import traced, tracing_middleware
from authserver.storage.db import make_engine
from authserver.storage.schema import MIGRATION_LOCK_KEY
from resourceserver import storage as resource_storage
from resourceserver.app import create_app as create_resource_app
from resourceserver.direct import DirectPaths
from resourceserver.external.introspection import IntrospectionVerifier
from resourceserver.external.issuer import ExternalIssuer
from resourceserver.external.verifier import ExternalTokenVerifier
from resourceserver.mcp.registry import Registry
from resourceserver.settings import ResourceServerSettings
from resourceserver.verifier import JwtTokenVerifier


@dataclass
class ResourceOnlyDeployment:
    """The MCP server alone, in front of an external authorization server."""

    settings: CharterSettings
    engine: Engine
    resource_settings: ResourceServerSettings
    verifier: ExternalTokenVerifier
    registry: Registry
    app: Starlette
    begin_drain: Callable[[], None]


def prepare_resource_database(engine: Engine) -> None:
    """Create the resource server's tables only (sessions, events, tasks, notes); idempotent,
    one process at a time on PostgreSQL. The authorization server's tables are not made."""
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
            )
        resource_storage.metadata.create_all(connection)


def external_resource_settings(settings: CharterSettings) -> ResourceServerSettings:
    """Resource server settings naming the external issuer and its algorithms."""
    values = settings.values_for(ResourceServerSettings.model_fields)
    values["issuer"] = settings.authorization_server
    values["allowed_algorithms"] = settings.external_token_algorithms
    return ResourceServerSettings(**values)


def external_verifier(
    settings: CharterSettings, resource_settings: ResourceServerSettings
) -> ExternalTokenVerifier:
    """JWKS checks of JWT access tokens, and introspection when credentials are configured."""
    issuer = ExternalIssuer(
        settings.authorization_server, GuardedFetcher(external_fetch_policy(settings))
    )
    jwt = JwtTokenVerifier(resource_settings, issuer.key_source(), plain_jwt=True)
    introspection = None
    secret = settings.introspection_client_secret
    if settings.introspection_client_id and secret is not None:
        introspection = IntrospectionVerifier(
            resource_settings,
            issuer,
            (settings.introspection_client_id, secret.get_secret_value()),
            cache_seconds=settings.introspection_cache_seconds,
            cache_size=resource_settings.token_cache_size,
        )
    return ExternalTokenVerifier(jwt, introspection)


def build_resource_only(
    settings: CharterSettings,
    *,
    engine: Engine | None = None,
    registry: Registry | None = None,
    drain_on_signals: bool = False,
    tune_gc: bool = False,
) -> ResourceOnlyDeployment:
    """The protected MCP server in front of ``settings.authorization_server`` (tables ready)."""
    engine = engine if engine is not None else make_engine(settings.database_url)
    resource_settings = external_resource_settings(settings)
    verifier = external_verifier(settings, resource_settings)
    if registry is None:
        registry = build_registry(engine, settings.tools)
    resource_app = create_resource_app(
        resource_settings,
        verifier,
        registry,
        engine,
        options=transport_options_for(settings),
        request_state_keys=request_state_keys(settings),
    )
    begin_drain = _drainer(resource_app)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        restore = chain_exit_signals(begin_drain) if drain_on_signals else None
        try:
            async with resource_app.router.lifespan_context(resource_app):
                if tune_gc:
                    tune_for_serving()
                yield
        finally:
            if restore is not None:
                restore()
            await run_in_threadpool(engine.dispose)
            await run_in_threadpool(flush_traces)

    routes: list[BaseRoute] = [Mount("/", app=resource_app)]
    route_labels = RouteLabels(routes)
    app = DirectPaths(
        routes=routes,
        middleware=[
            *tracing_middleware(route_labels),
            Middleware(RequestIdMiddleware, quiet_paths=QUIET_PATHS),
        ],
        lifespan=lifespan,
    )
    app.state.deployment_settings = settings
    mcp_path = resource_settings.resource_path
    app.direct[mcp_path] = traced(RequestIdMiddleware(resource_app.direct[mcp_path]), route_labels)
    return ResourceOnlyDeployment(
        settings, engine, resource_settings, verifier, registry, app, begin_drain
    )


def _drainer(resource_app: Starlette) -> Callable[[], None]:
    def begin_drain() -> None:
        endpoint = getattr(resource_app.state, "mcp_endpoint", None)
        stopping = getattr(endpoint, "stopping", None)
        if isinstance(stopping, asyncio.Event):
            stopping.set()

    return begin_drain
