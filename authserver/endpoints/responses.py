"""JSON error answers of the OAuth endpoints (RFC 6749 §5.2; RFC 7591 §3.2.2).

An :class:`~authserver.errors.OAuthError` becomes its JSON response here, with its internal
``detail`` logged and never sent; answering (rather than raising) lets CORS headers be added.
"""

from __future__ import annotations

import logging

from starlette.responses import JSONResponse, Response

from authserver.errors import NO_STORE_HEADERS, OAuthError

logger = logging.getLogger("charter.authserver")


def error_response(exc: OAuthError) -> Response:
    """The JSON error response, with the internal detail logged (never sent)."""
    if exc.detail:
        logger.info("%s: %s", exc.error, exc.detail)
    return exc.to_response()


def method_not_allowed(allowed: str) -> Response:
    """405 with the OAuth error body and ``no-store``."""
    return JSONResponse(
        {"error": "invalid_request", "error_description": f"use {allowed}"},
        status_code=405,
        headers={**NO_STORE_HEADERS, "Allow": f"{allowed}, OPTIONS"},
    )
