"""OpenTelemetry tracing of ``charter serve``: the SDK set up from the standard ``OTEL_*``
variables, the HTTP server span, and the token endpoint's span.

Optional: ``pip install 'charter-mcp[otel]'`` brings the OpenTelemetry SDK and the OTLP/HTTP
exporter. Tracing is on when they are installed and the environment asks for traces
(OpenTelemetry "SDK Environment Variables" / "Exporter selection"):

- ``OTEL_TRACES_EXPORTER``: ``otlp`` (OTLP over HTTP/protobuf), ``console``, both
  (comma-separated) or ``none``; unset, an ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or
  ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) means ``otlp``, and nothing means off;
- ``OTEL_SDK_DISABLED=true`` turns it off whatever else is set;
- the exporter, batch processor, sampler and resource read their own variables
  (``OTEL_EXPORTER_OTLP_*``, ``OTEL_BSP_*``, ``OTEL_TRACES_SAMPLER``,
  ``OTEL_RESOURCE_ATTRIBUTES``); ``service.name`` is ``OTEL_SERVICE_NAME``, else ``charter``.

Each serving process (each worker of ``charter serve --workers N``) calls
:func:`configure_from_environment` once: a ``TracerProvider`` with one ``BatchSpanProcessor``
per exporter, made the global provider and handed to :mod:`resourceserver.tracing` (the helper
API the code uses); :func:`flush` at the end of the lifespan sends what is left. Without the
packages, or with tracing off, nothing is imported, the spans are no-ops and the app is built
without the tracing middleware. An application embedding Charter that has its own provider
calls ``resourceserver.tracing.install(provider)`` before building the deployment.

Spans hold only bounded, non-secret values (S92): the HTTP span's name and ``http.route`` are
route templates, never the raw path or its query string; no header value is recorded.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from authserver.ops.metrics import RouteLabels, token_labels
from resourceserver import tracing

logger = logging.getLogger("charter.tracing")

EXPORTERS = frozenset({"otlp", "console"})
_METHODS = frozenset({"GET", "POST", "DELETE", "OPTIONS", "HEAD", "PUT", "PATCH"})
_provider: Any = None


def wanted_exporters(environ: Mapping[str, str]) -> list[str]:
    """The span exporters the ``OTEL_*`` variables ask for (empty: tracing off)."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    named = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if not named:
        endpoints = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        return ["otlp"] if any(environ.get(name) for name in endpoints) else []
    wanted: list[str] = []
    for name in (part.strip() for part in named.split(",")):
        if name in EXPORTERS and name not in wanted:
            wanted.append(name)
        elif name not in ("", "none"):
            logger.warning("OTEL_TRACES_EXPORTER: unknown exporter %r ignored", name[:40])
    return wanted


def configure_from_environment(environ: Mapping[str, str] | None = None) -> bool:
    """Set up the SDK for this process when the environment asks for traces; True when on."""
    global _provider
    if _provider is not None:
        return True
    environ = os.environ if environ is None else environ
    exporters = wanted_exporters(environ)
    if not exporters:
        return False
    try:
        _provider = _sdk_provider(exporters, environ)
    except ImportError:
        logger.warning(
            "OTEL_* variables ask for traces but OpenTelemetry is not installed: "
            "pip install 'charter-mcp[otel]'; tracing stays off"
        )
        return False
    return True


def _sdk_provider(exporters: list[str], environ: Mapping[str, str]) -> Any:
    """A ``TracerProvider`` exporting through ``exporters`` in batches, made global."""
    from opentelemetry import trace
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: "charter"}))
    provider = TracerProvider(resource=resource)
    for name in exporters:
        exporter: SpanExporter
        if name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            if environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf") != "http/protobuf":
                logger.warning("OTEL_EXPORTER_OTLP_PROTOCOL: only http/protobuf is supported")
            exporter = OTLPSpanExporter()
        else:
            exporter = ConsoleSpanExporter()
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    tracing.install(provider)
    logger.info("tracing on: exporting spans to %s", ", ".join(exporters))
    return provider


def flush(timeout_millis: int = 5000) -> None:
    """Send the spans still waiting in this process's batch processors (no-op when off)."""
    if _provider is not None:
        _provider.force_flush(timeout_millis)


def traced(app: ASGIApp, routes: RouteLabels) -> ASGIApp:
    """``app`` behind :class:`TracingMiddleware` when tracing is on, else ``app`` itself (no
    extra layer on the request path when off; set tracing up before building the app)."""
    return TracingMiddleware(app, routes=routes) if tracing.enabled() else app


def tracing_middleware(routes: RouteLabels) -> list[Middleware]:
    """The app's outermost middleware when tracing is on, else nothing."""
    return [Middleware(TracingMiddleware, routes=routes)] if tracing.enabled() else []


class TracingMiddleware:
    """Plain ASGI middleware: one server span per HTTP request, ``{method} {route template}``,
    a child of the request's ``traceparent`` (never buffers, passes through when off)."""

    def __init__(self, app: ASGIApp, *, routes: RouteLabels) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not tracing.enabled():
            await self.app(scope, receive, send)
            return
        route = self.routes.label(str(scope.get("path", "")))
        method = str(scope.get("method", ""))
        method = method if method in _METHODS else "_OTHER"
        http_context = tracing.HttpContext(list(scope.get("headers", [])))
        attributes: dict[str, tracing.Attribute] = {
            "http.request.method": method,
            "url.scheme": str(scope.get("scheme", "http")),
        }
        name = method  # a path no route matches is not named (it may hold anything)
        if route != "other":
            attributes["http.route"] = route
            name = f"{method} {route}"
        with (
            http_context as parent,
            tracing.span(name, kind="server", attributes=attributes, parent=parent) as span,
        ):

            async def observe(message: Message) -> None:
                if message["type"] == "http.response.start":
                    status = int(message["status"])
                    span.set("http.response.status_code", status)
                    if status >= 500:
                        span.fail()
                await send(message)

            await self.app(scope, receive, observe)


def token_span() -> tracing.Span | tracing.NoSpan:
    """The span of one token endpoint request (see :func:`end_token_span`)."""
    return tracing.span("oauth token")


def end_token_span(
    span: tracing.Span | tracing.NoSpan, grant_type: str | None, error: str | None
) -> None:
    """Note the grant type and the outcome (``issued`` or the OAuth error code), both from
    fixed lists."""
    kind, outcome = token_labels(grant_type, error)
    span.set("oauth.grant_type", kind)
    span.set("charter.oauth.outcome", outcome)
    if error is not None:
        span.fail()
