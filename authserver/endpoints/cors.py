"""CORS for the endpoints browsers' JavaScript clients call (S8).

Token, metadata, JWKS, registration, revocation and introspection allow any origin (they use no
cookies); ``/authorize`` and the HTML pages never send CORS headers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from starlette.requests import Request
from starlette.responses import Response

Endpoint = Callable[[Request], Awaitable[Response]]

ALLOWED_HEADERS = "Authorization, Content-Type, MCP-Protocol-Version"


def allow_cors(endpoint: Endpoint, methods: Sequence[str]) -> Endpoint:
    """Wrap ``endpoint`` so it answers preflights and adds ``Access-Control-*`` headers."""
    allowed = ", ".join([*methods, "OPTIONS"])

    async def wrapped(request: Request) -> Response:
        if request.method == "OPTIONS":
            return Response(
                status_code=204,
                headers={
                    "Access-Control-Allow-Origin": "*",
                    "Access-Control-Allow-Methods": allowed,
                    "Access-Control-Allow-Headers": ALLOWED_HEADERS,
                    "Access-Control-Max-Age": "600",
                },
            )
        response = await endpoint(request)
        response.headers["Access-Control-Allow-Origin"] = "*"
        response.headers["Access-Control-Expose-Headers"] = "WWW-Authenticate, Retry-After"
        return response

    return wrapped
