"""``create_app``: the authorization server as a Starlette application (no module-level state)."""

from __future__ import annotations

import logging

from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from authserver.context import AuthServer
from authserver.endpoints import (
    authorize,
    introspection,
    jwks,
    logout,
    metadata,
    password_change,
    registration,
    revocation,
    token,
    upstream_login,
)
from authserver.endpoints.responses import error_response
from authserver.errors import OAuthError, TemporarilyUnavailableError
from authserver.ops.metrics import DATABASE_ERRORS

logger = logging.getLogger("charter.authserver")


def authserver_routes(server: AuthServer) -> list[BaseRoute]:
    """Every route of the authorization server, to mount in one app or in a combined one."""
    return [
        *metadata.metadata_routes(server),
        *jwks.jwks_routes(server),
        *registration.routes(server),
        *authorize.routes(server),
        *upstream_login.routes(server),
        *password_change.routes(server),
        *logout.routes(server),
        *token.routes(server),
        *revocation.routes(server),
        *introspection.routes(server),
    ]


async def oauth_error_handler(_request: Request, exc: Exception) -> Response:
    """Render an :class:`OAuthError` escaping an endpoint as its JSON response."""
    if not isinstance(exc, OAuthError):  # pragma: no cover - registered for OAuthError only
        raise exc
    return error_response(exc)


async def database_error_handler(_request: Request, exc: Exception) -> Response:
    """The database is unreachable or failing: 503 ``temporarily_unavailable`` (S61)."""
    # The driver's own message (never the statement's parameters, which SQLAlchemy appends).
    origin = getattr(exc, "orig", None) or exc
    logger.error("database error: %s: %s", type(origin).__name__, str(origin).strip()[:300])
    DATABASE_ERRORS.inc()
    return TemporarilyUnavailableError("the service is temporarily unavailable").to_response()


EXCEPTION_HANDLERS = {
    OAuthError: oauth_error_handler,
    OperationalError: database_error_handler,
    DBAPIError: database_error_handler,
}


def create_app(server: AuthServer) -> Starlette:
    """The authorization server alone (the combined deployment mounts the same routes)."""
    return Starlette(routes=authserver_routes(server), exception_handlers=dict(EXCEPTION_HANDLERS))
