"""The JSON Web Key Set of the signing keys (RFC 7517 §5), at ``/jwks.json``."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from authserver.context import AuthServer
from authserver.endpoints.cors import allow_cors


def jwks_routes(server: AuthServer) -> list[BaseRoute]:
    """``GET /jwks.json``: every published public key, cacheable briefly."""

    async def jwks(_request: Request) -> Response:
        document = await run_in_threadpool(server.keys.jwks)
        return JSONResponse(document, headers={"Cache-Control": "max-age=60"})

    return [Route("/jwks.json", allow_cors(jwks, ["GET"]), methods=["GET", "OPTIONS"])]
