"""Prometheus metrics of the deployment: HTTP traffic, token grants, security events, open
streams and the database pool, and the ``/metrics`` endpoint in the Prometheus text format.

``prometheus-client`` keeps the values; with several workers ``charter serve`` points
``PROMETHEUS_MULTIPROC_DIR`` at a fresh folder before the workers start, every worker writes
its values there, and whichever worker answers ``/metrics`` adds them all up
(``MultiProcessCollector``). The MCP server's own metrics are in :mod:`resourceserver.metrics`.

Labels are bounded (S91): HTTP routes are the route templates the app defines (any other path
is ``other``), grant types and OAuth error codes come from fixed lists, security events are the
audit trail's event names (constants of the code). No label holds a user, a client id, a token
or a name chosen by a client.

``/metrics`` is not public: it answers only peers on the loopback interface (after trusted
proxies' ``X-Forwarded-For``), or, when ``metrics_token`` is set, requests bearing that token.
"""

from __future__ import annotations

import hmac
import os
import re
from collections.abc import Iterable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as prometheus_multiprocess
from prometheus_client import registry as prometheus_registry
from sqlalchemy import Engine, event
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from authserver.config.settings import CharterSettings, is_loopback_host
from authserver.endpoints.client_address import client_ip

METRICS_PATH = "/metrics"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

HTTP_REQUESTS = Counter(
    "charter_http_requests_total",
    "HTTP requests, by route, method and status.",
    ["route", "method", "status"],
)
HTTP_SECONDS = Histogram(
    "charter_http_request_duration_seconds",
    "Time to the end of the response, by route.",
    ["route"],
)
OPEN_STREAMS = Gauge(
    "charter_open_streams",
    "Server-Sent Events responses open now.",
    multiprocess_mode="livesum",
)
TOKEN_GRANTS = Counter(
    "charter_token_grants_total",
    "Token endpoint requests, by grant type and outcome.",
    ["grant_type", "outcome"],
)
SECURITY_EVENTS = Counter(
    "charter_security_events_total", "Audit trail events recorded, by event.", ["event"]
)
REFRESH_REUSE = Counter(
    "charter_refresh_reuse_detections_total", "Refresh tokens presented again after rotation."
)
FAILED_LOGINS = Counter("charter_failed_logins_total", "Failed sign-ins (wrong password).")
REGISTRATIONS = Counter(
    "charter_registrations_total", "Dynamic client registrations (RFC 7591) accepted."
)
DATABASE_ERRORS = Counter(
    "charter_database_errors_total", "Requests answered 503 because the database failed."
)
POOL_CHECKED_OUT = Gauge(
    "charter_db_pool_checked_out",
    "Database connections in use now.",
    multiprocess_mode="livesum",
)
POOL_SIZE = Gauge(
    "charter_db_pool_size",
    "Database connections each worker keeps open (sum).",
    multiprocess_mode="livesum",
)

GRANT_TYPES = frozenset({"authorization_code", "refresh_token", "client_credentials"})
#: OAuth error codes of the token endpoint (RFC 6749 §5.2, RFC 8707, OAuth 2.1).
TOKEN_ERRORS = frozenset(
    {
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "unauthorized_client",
        "unsupported_grant_type",
        "invalid_scope",
        "invalid_target",
        "temporarily_unavailable",
        "slow_down",
    }
)
#: Audit events that also have a counter of their own.
_EVENT_COUNTERS = {
    "refresh_reuse_detected": REFRESH_REUSE,
    "login_failed": FAILED_LOGINS,
    "client_registered": REGISTRATIONS,
}


def count_security_event(name: str) -> None:
    """Count one committed audit event (names are constants of the code)."""
    SECURITY_EVENTS.labels(name).inc()
    counter = _EVENT_COUNTERS.get(name)
    if counter is not None:
        counter.inc()


def token_labels(grant_type: str | None, error: str | None) -> tuple[str, str]:
    """The bounded grant type and outcome (``issued`` or its OAuth error code) of an answer."""
    kind = grant_type if grant_type in GRANT_TYPES else "other"
    outcome = "issued" if error is None else (error if error in TOKEN_ERRORS else "error")
    return kind, outcome


def count_token_request(grant_type: str | None, error: str | None) -> None:
    """Count one token endpoint answer: ``issued`` or its OAuth error code."""
    TOKEN_GRANTS.labels(*token_labels(grant_type, error)).inc()


def watch_pool(engine: Engine) -> None:
    """Keep :data:`POOL_CHECKED_OUT` and :data:`POOL_SIZE` for ``engine``'s pool."""
    size = getattr(engine.pool, "size", None)
    if callable(size):
        POOL_SIZE.inc(size())

    def checked_out(*_args: Any) -> None:
        POOL_CHECKED_OUT.inc()

    def checked_in(*_args: Any) -> None:
        POOL_CHECKED_OUT.dec()

    event.listen(engine, "checkout", checked_out)
    event.listen(engine, "checkin", checked_in)


class RouteLabels:
    """Turns a request path into the template of the route it matches, else ``other``."""

    def __init__(self, routes: Iterable[BaseRoute]) -> None:
        self._patterns: list[tuple[re.Pattern[str], str]] = []
        self._add(routes, "")

    def _add(self, routes: Iterable[BaseRoute], prefix: str) -> None:
        for route in routes:
            if isinstance(route, Route):
                template = prefix + route.path
                pattern = re.escape(prefix) + route.path_regex.pattern.lstrip("^")
                self._patterns.append((re.compile("^" + pattern), template))
            elif isinstance(route, Mount):
                self._add(route.routes, prefix + route.path)

    def label(self, path: str) -> str:
        """The route template of ``path``, or ``other``."""
        for pattern, template in self._patterns:
            if pattern.match(path):
                return template
        return "other"


_METHODS = frozenset({"GET", "POST", "DELETE", "OPTIONS", "HEAD", "PUT", "PATCH"})
#: Most request paths whose route label is remembered (paths are chosen by clients).
_PATHS_REMEMBERED = 4096


class RequestMetrics:
    """Counts HTTP requests and open event streams; the request's observer of
    :class:`authserver.ops.logging_setup.RequestIdMiddleware` (one ``send`` wrapper for both).

    The label children of each (route, method, status) are looked up once and kept: looking
    them up through ``labels()`` on every request was a tenth of the hot path's time.
    """

    def __init__(self, routes: RouteLabels) -> None:
        self.routes = routes
        self._route_of: dict[str, str] = {}
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def stream_opened(self) -> None:
        OPEN_STREAMS.inc()

    def stream_closed(self) -> None:
        OPEN_STREAMS.dec()

    def finished(self, path: str, method: str, status: int, seconds: float) -> None:
        """Count one answered request."""
        route = self._route_of.get(path)
        if route is None:
            route = self.routes.label(path)
            if len(self._route_of) >= _PATHS_REMEMBERED:
                self._route_of.clear()
            self._route_of[path] = route
        label = method if method in _METHODS else "other"
        key = (route, label, status)
        children = self._children.get(key)
        if children is None:
            children = (
                HTTP_REQUESTS.labels(route, label, str(status)),
                HTTP_SECONDS.labels(route),
            )
            if len(self._children) >= _PATHS_REMEMBERED:
                self._children.clear()
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)


def collect_registry() -> CollectorRegistry:
    """Every worker's values in multiprocess mode, else this process's."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        prometheus_multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return registry
    return prometheus_registry.REGISTRY


def allowed(request: Request, settings: CharterSettings) -> bool:
    """True for a loopback peer, or (when ``metrics_token`` is set) for its bearer."""
    token = settings.metrics_token.get_secret_value() if settings.metrics_token else ""
    if token:
        given = request.headers.get("authorization", "")
        scheme, _, value = given.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(value.strip(), token)
    return is_loopback_host(client_ip(request))


def metrics_routes(settings: CharterSettings) -> list[BaseRoute]:
    """``GET /metrics`` (see the module docstring); nothing when metrics are off."""
    if not settings.metrics_enabled:
        return []

    async def metrics(request: Request) -> Response:
        if not allowed(request, settings):
            return PlainTextResponse("forbidden\n", status_code=403)
        body = generate_latest(collect_registry())
        return Response(body, media_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})

    return [Route(METRICS_PATH, metrics, methods=["GET"])]
