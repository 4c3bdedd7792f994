"""The composition root: one Starlette app serving the authorization server and the MCP server.

This package is the only place that imports both :mod:`authserver` and :mod:`resourceserver`
(DESIGN.md "One composition root"; the first start, the shared parts and resource-server-only
mode are its modules :mod:`.first_start`, :mod:`.parts` and :mod:`.resource_only`). It

1. builds the :class:`~authserver.context.AuthServer` from :class:`CharterSettings`;
2. brings the database to the current schema (both packages' tables, Alembic migrations),
   ensures a signing key and, on a database without users, creates the first ``admin`` with a
   random one-time password that the first browser login must change (:func:`initialize`);
3. builds the resource server with a token verifier over the issuer's JWKS read in-process
   (no HTTP hop), the authorization server's access-token revocation view, and the key that
   seals MCP 2026-07-28 ``requestState`` (HKDF of the key-encryption key, so every worker
   sharing ``CHARTER_KEY_ENCRYPTION_KEY`` opens what another sealed);
4. mounts the health endpoints (``/healthz``, ``/readyz``), the metrics (``/metrics``,
   :mod:`authserver.ops.metrics`), the home page, the authorization server's routes
   and the resource server's app on one origin, behind the request-id/access-log middleware
   (:func:`build_deployment`).

With ``authorization_server`` set (resource-server-only mode), :func:`build_resource_only`
builds the MCP server alone in front of that issuer: no authorization-server routes, tables or
keys; tokens are checked by the issuer's JWKS or by RFC 7662 introspection, every outbound
request through the SSRF guard (:mod:`authserver.federation.outbound`).

:func:`create_deployment_app` is the zero-argument factory uvicorn workers import
(``authserver.deployment:create_deployment_app``); it reads ``CHARTER_*`` environment variables.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from authserver.browser.account_sign_in import sign_in_routes
from authserver.browser.applications_page import applications_routes
from authserver.browser.home import ExplainMcpToBrowsers, home_routes, mcp_browser_page
from authserver.config.servers import McpServerConfig
from authserver.config.settings import CharterSettings
from authserver.console.routes import console_routes
from authserver.context import AuthServer
from authserver.deployment.first_start import (
    FIRST_ADMIN_USERNAME,
    FIRST_PASSWORD_BYTES,
    FirstStart,
    initialize,
)
from authserver.deployment.parts import (
    LOCAL_JWKS_CACHE_SECONDS,
    TOOL_MODULE_ERRORS,
    build_registry,
    request_state_keys,
    resource_settings_for,
    transport_options_for,
)
from authserver.deployment.resource_only import (
    ResourceOnlyDeployment,
    build_resource_only,
    external_resource_settings,
    external_verifier,
    prepare_resource_database,
)
from authserver.endpoints.app import EXCEPTION_HANDLERS, authserver_routes
from authserver.endpoints.cors import allow_cors
from authserver.endpoints.metadata import WELL_KNOWN, metadata_document
from authserver.oauth.tokens import AccessTokenRevocationView
from authserver.ops.clean_exit import chain_exit_signals
from authserver.ops.gc_tuning import tune_for_serving
from authserver.ops.health import QUIET_PATHS, Readiness, health_routes
from authserver.ops.logging_setup import RequestIdMiddleware
from authserver.ops.maintenance import maintenance_loop
from authserver.ops.metrics import RequestMetrics, RouteLabels, metrics_routes, watch_pool
from authserver.ops.tracing import configure_from_environment, traced, tracing_middleware
from authserver.ops.tracing import flush as flush_traces
from authserver.storage.db import make_engine
from resourceserver.app import create_app as create_resource_app
from resourceserver.direct import DirectPaths, McpGate
from resourceserver.jwks import CallbackKeySource
from resourceserver.mcp.registry import Registry, load_tool_modules
from resourceserver.principal import Principal
from resourceserver.settings import ResourceServerSettings
from resourceserver.tools import builtin_registry
from resourceserver.verifier import JwtTokenVerifier

if TYPE_CHECKING:
    from resourceserver.stdio import StdioBridge, Write

__all__ = [
    "FIRST_ADMIN_USERNAME",
    "FIRST_PASSWORD_BYTES",
    "LOCAL_JWKS_CACHE_SECONDS",
    "STDIO_CLIENT_ID",
    "TOOL_MODULE_ERRORS",
    "Deployment",
    "FirstStart",
    "ResourceOnlyDeployment",
    "build_deployment",
    "build_registry",
    "build_resource_only",
    "build_stdio_bridge",
    "create_deployment_app",
    "embedded_deployment",
    "external_resource_settings",
    "external_verifier",
    "initialize",
    "prepare_resource_database",
    "request_state_keys",
    "resource_settings_for",
    "transport_options_for",
]

logger = logging.getLogger("charter.deployment")


@dataclass
class Deployment:
    """The built deployment: its app and the parts tests and the CLI may need."""

    settings: CharterSettings
    server: AuthServer
    resource_settings: ResourceServerSettings
    registry: Registry
    #: The resource server's own app, mounted at ``/`` inside :attr:`app`.
    resource_app: DirectPaths
    app: DirectPaths
    #: Ends open SSE streams at once (clients resume elsewhere with ``Last-Event-ID``) while
    #: running requests finish; called on SIGTERM/SIGINT before uvicorn drains connections.
    begin_drain: Callable[[], None]

    @contextlib.asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        """The deployment's lifespan, to enter inside a host application's own when
        :attr:`app` is mounted there (a mounted app's lifespan does not run by itself)."""
        async with self.app.router.lifespan_context(self.app):
            yield


def build_deployment(
    settings: CharterSettings,
    *,
    server: AuthServer | None = None,
    registry: Registry | None = None,
    drain_on_signals: bool = False,
    tune_gc: bool = False,
) -> Deployment:
    """Wire the authorization server and the MCP server into one app (schema must be ready).

    With ``drain_on_signals``, the app's lifespan chains a SIGTERM/SIGINT handler (main thread
    only) that ends SSE streams before uvicorn's own graceful shutdown. With ``tune_gc`` (a
    serving worker, not a test), start-up ends with :func:`tune_for_serving`.
    """
    server = server or AuthServer.build(settings)
    resource_settings = resource_settings_for(settings)

    async def local_jwks() -> Mapping[str, Any]:
        return await run_in_threadpool(server.keys.jwks)

    keys = CallbackKeySource(local_jwks, cache_ttl=LOCAL_JWKS_CACHE_SECONDS)
    revocation = AccessTokenRevocationView(server)
    if registry is None:
        registry = build_registry(server, settings.tools)

    def resource_app_for(rs_settings: ResourceServerSettings, tools: Registry) -> DirectPaths:
        # One verifier (and token cache) per server: its audience is that server's URL (S82).
        verifier = JwtTokenVerifier(rs_settings, keys, revocation=revocation)
        return create_resource_app(
            rs_settings,
            verifier,
            tools,
            server.database.engine,
            options=transport_options_for(settings),
            request_state_keys=request_state_keys(settings),
        )

    resource_app = resource_app_for(resource_settings, registry)
    extra_apps = [
        resource_app_for(
            server_settings_for(settings, declared),
            declared_registry(server, declared),
        )
        for declared in settings.mcp_servers
    ]
    resource_apps = [resource_app, *extra_apps]

    def begin_drain() -> None:
        for app in resource_apps:
            drain_app(app)

    lifespan = deployment_lifespan(
        server, settings, resource_apps, begin_drain, drain_on_signals, tune_gc
    )

    watch_pool(server.database.engine)
    routes = [
        *health_routes(Readiness(server)),
        *metrics_routes(settings),
        *authserver_routes(server),
        *metadata_aliases(server, resource_settings.resource_path),
        *(alias for d in settings.mcp_servers for alias in metadata_aliases(server, d.path)),
        *home_routes(server),
        *sign_in_routes(server),
        *applications_routes(server),
        *console_routes(server),
        Mount("/", app=ExplainMcpToBrowsers(by_path(resource_app, extra_apps), server=server)),
    ]
    route_labels = RouteLabels(routes)
    request_metrics = RequestMetrics(route_labels)
    app = DirectPaths(
        routes=routes,
        middleware=[
            *tracing_middleware(route_labels),
            Middleware(RequestIdMiddleware, quiet_paths=QUIET_PATHS, observer=request_metrics),
        ],
        exception_handlers=dict(EXCEPTION_HANDLERS),
        lifespan=lifespan,
    )
    app.state.deployment_settings = settings
    # Each MCP path: the span, the access log, the metrics, the page for browsers, then the
    # resource server's own direct stack (no routers).
    browser_page = mcp_browser_page(server)
    for each in resource_apps:
        for mcp_path, stack in each.direct.items():
            explained: ASGIApp
            if isinstance(stack, McpGate):
                stack.browser_page = browser_page  # the page, in the gate's own layer
                explained = stack
            else:
                explained = ExplainMcpToBrowsers(stack, server=server)
            app.direct[mcp_path] = traced(
                RequestIdMiddleware(explained, observer=request_metrics),
                route_labels,
            )
    return Deployment(
        settings=settings,
        server=server,
        resource_settings=resource_settings,
        registry=registry,
        resource_app=resource_app,
        app=app,
        begin_drain=begin_drain,
    )


#: The client id of every STDIO principal (no OAuth client is involved).
STDIO_CLIENT_ID = "charter-stdio"


def build_stdio_bridge(
    settings: CharterSettings,
    server: AuthServer,
    registry: Registry,
    subject: str,
    scopes: frozenset[str],
    write: Write,
) -> tuple[StdioBridge, Deployment]:
    """The MCP endpoint of this deployment served over stdio as ``subject`` with ``scopes``
    (``charter stdio``); the caller runs the bridge and closes the endpoint afterwards."""
    from resourceserver.stdio import StdioBridge  # only ``charter stdio`` needs it

    deployment = build_deployment(settings, server=server, registry=registry)
    principal = Principal(
        subject=subject,
        client_id=STDIO_CLIENT_ID,
        scopes=scopes,
        token_id=STDIO_CLIENT_ID,  # no token: the id names where the principal comes from
        expires_at=2**62,
    )
    endpoint = deployment.resource_app.state.mcp_endpoint
    bridge = StdioBridge(
        endpoint, principal, registry, write, path=deployment.resource_settings.resource_path
    )
    return bridge, deployment


def deployment_lifespan(
    server: AuthServer,
    settings: CharterSettings,
    resource_apps: list[DirectPaths],
    begin_drain: Callable[[], None],
    drain_on_signals: bool,
    tune_gc: bool,
) -> Callable[[Starlette], contextlib.AbstractAsyncContextManager[None]]:
    """The deployment's lifespan: housekeeping, every resource app's lifespan, signals."""

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        restore = chain_exit_signals(begin_drain) if drain_on_signals else None
        interval = settings.maintenance_interval_seconds
        housekeeping = (
            asyncio.create_task(maintenance_loop(server, interval)) if interval > 0 else None
        )
        try:
            async with contextlib.AsyncExitStack() as stack:
                for app in resource_apps:
                    await stack.enter_async_context(app.router.lifespan_context(app))
                if tune_gc:
                    tune_for_serving()
                yield
        finally:
            if housekeeping is not None:
                housekeeping.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await housekeeping
            if restore is not None:
                restore()
            await run_in_threadpool(server.database.dispose)
            await run_in_threadpool(flush_traces)

    return lifespan


def drain_app(resource_app: DirectPaths) -> None:
    """End a resource app's open SSE streams now (see :attr:`Deployment.begin_drain`)."""
    endpoint = getattr(resource_app.state, "mcp_endpoint", None)
    stopping = getattr(endpoint, "stopping", None)
    if isinstance(stopping, asyncio.Event):
        stopping.set()


def server_settings_for(
    settings: CharterSettings, declared: McpServerConfig
) -> ResourceServerSettings:
    """The settings of a server of ``CHARTER_MCP_SERVERS_FILE``: its URL, name and scopes."""
    return resource_settings_for(settings).model_copy(
        update={
            "resource_url": settings.server_url(declared),
            "resource_name": declared.name,
            "scopes_supported": declared.scopes,
        }
    )


def declared_registry(server: AuthServer, declared: McpServerConfig) -> Registry:
    """The tools of a declared server: its modules (and the built-in ones with ``builtin``)."""
    registry = builtin_registry(server.database.engine) if declared.builtin else Registry()
    registry.name = declared.name
    return load_tool_modules(declared.tools, into=registry)


def by_path(default: Starlette, others: list[DirectPaths]) -> ASGIApp:
    """Each declared server's app answers its own paths (MCP endpoint, metadata); the default
    resource app everything else, the root metadata document included."""
    shared = {route.path for route in default.routes if isinstance(route, Route)}
    table: dict[str, ASGIApp] = {}
    for app in others:
        for route in app.routes:
            if isinstance(route, Route) and route.path not in shared:
                table[route.path] = app
    if not table:
        return default

    async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
        app = table.get(scope.get("path", ""), default) if scope["type"] == "http" else default
        await app(scope, receive, send)

    return dispatch


def metadata_aliases(server: AuthServer, resource_path: str) -> list[BaseRoute]:
    """The AS metadata also at ``/.well-known/…{resource_path}`` (e.g. ``…/mcp``).

    Some MCP clients take the MCP URL's path for the issuer's and ask there (REAL-CLIENTS.md
    §4); the document is the same (its ``issuer`` stays exact, RFC 8414 §3.3).
    """
    path = resource_path.rstrip("/")
    if not path or server.settings.issuer_path:
        return []

    async def metadata(_request: Request) -> Response:
        return JSONResponse(metadata_document(server), headers={"Cache-Control": "max-age=300"})

    endpoint = allow_cors(metadata, ["GET"])
    return [Route(base + path, endpoint, methods=["GET", "OPTIONS"]) for base in WELL_KNOWN]


def embedded_deployment(
    settings: CharterSettings | None = None, *, registry: Registry | None = None
) -> tuple[Deployment, FirstStart]:
    """The authorization server and MCP server to mount in an existing application.

    Prepares the database like ``charter serve`` (migrations, signing key, the first admin on
    an empty database: its one-time password is in the returned :class:`FirstStart`). Mount
    :attr:`Deployment.app` at ``/`` after the host's routes (the issuer is the host's origin)
    and enter :meth:`Deployment.lifespan` in the host's lifespan.
    """
    settings = settings or CharterSettings()
    server = AuthServer.build(settings)
    first = initialize(server)
    return build_deployment(settings, server=server, registry=registry), first


def create_deployment_app() -> Starlette:
    """Factory for uvicorn workers: settings from ``CHARTER_*``; no admin is created here.

    ``charter serve`` initializes the database before it starts the workers; running this
    factory directly (``uvicorn --factory authserver.deployment:create_deployment_app``) still
    migrates and ensures a signing key.
    """
    settings = CharterSettings()
    configure_from_environment()  # each worker its own tracer provider (OTEL_* variables)
    if settings.resource_only:
        engine = make_engine(settings.database_url)
        prepare_resource_database(engine)
        deployment = build_resource_only(
            settings, engine=engine, drain_on_signals=True, tune_gc=True
        )
        return deployment.app
    server = AuthServer.build(settings)
    initialize(server, create_admin=False)
    return build_deployment(settings, server=server, drain_on_signals=True, tune_gc=True).app
