"""The client registration endpoint (RFC 7591 §3) and its management endpoint (RFC 7592 §2).

``POST /register`` takes a JSON object (``application/json``, at most 16 KiB; S48) and answers
201 with the client information (:mod:`authserver.clients.registration` registers it: limits,
idempotent re-registration, hashes); 415/413/400 for a body that is not such an object, 429
with ``Retry-After`` past the per-IP limit, 403 when open registration is off.

``GET``/``PUT``/``DELETE /register/{client_id}`` need ``Authorization: Bearer <registration
access token>``; a missing or wrong token, or an unknown client, answer the same 401
``invalid_token``. ``PUT`` replaces the metadata under the same validation; the secret cannot
be chosen by the client (a client turned confidential receives a new one). ``DELETE`` removes
the client and revokes its grants and tokens, 204. CORS is allowed (S8).
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from authserver.clients.metadata import MAX_BODY_BYTES
from authserver.clients.registration import (
    check_rate,
    read_client,
    register_client,
    remove_client,
    update_client,
)
from authserver.context import AuthServer
from authserver.endpoints.bodies import OversizedBodyError, WrongMediaTypeError, read_json_object
from authserver.endpoints.client_address import client_ip
from authserver.endpoints.cors import allow_cors
from authserver.endpoints.responses import error_response
from authserver.errors import (
    NO_STORE_HEADERS,
    AccessDeniedError,
    InvalidClientMetadataError,
    OAuthError,
    RegistrationTokenError,
)


class UnsupportedMediaTypeError(InvalidClientMetadataError):
    """The request body is not ``application/json``."""

    status_code = 415


class BodyTooLargeError(InvalidClientMetadataError):
    """The request body is larger than :data:`MAX_BODY_BYTES`."""

    status_code = 413


async def read_registration(request: Request) -> dict[str, Any]:
    """The body as a JSON object: ``application/json``, at most 16 KiB, else an error."""
    try:
        return await read_json_object(request, max_bytes=MAX_BODY_BYTES)
    except WrongMediaTypeError as exc:
        raise UnsupportedMediaTypeError("the request body must be application/json") from exc
    except OversizedBodyError as exc:
        raise BodyTooLargeError(f"the request body must be at most {MAX_BODY_BYTES} bytes") from exc
    except ValueError as exc:
        raise InvalidClientMetadataError(str(exc)) from exc


def bearer_token(request: Request) -> str:
    """The bearer token of the ``Authorization`` header, or raise 401 ``invalid_token``."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > 512:
        raise RegistrationTokenError("a registration access token is required")
    return token


def routes(server: AuthServer) -> list[BaseRoute]:
    """``/register`` and ``/register/{client_id}``, with CORS (S8)."""

    async def register(request: Request) -> Response:
        try:
            return await _register(request)
        except OAuthError as exc:
            return error_response(exc)

    async def manage(request: Request) -> Response:
        try:
            return await _manage(request)
        except OAuthError as exc:
            return error_response(exc)

    async def _register(request: Request) -> Response:
        if not server.settings.registration_open:
            raise AccessDeniedError("open dynamic client registration is disabled")
        ip = client_ip(request)
        await run_in_threadpool(check_rate, server, ip)
        body = await read_registration(request)
        information = await run_in_threadpool(register_client, server, body, ip)
        return JSONResponse(information, status_code=201, headers=dict(NO_STORE_HEADERS))

    async def _manage(request: Request) -> Response:
        client_id = str(request.path_params["client_id"])
        token = bearer_token(request)
        if request.method == "GET":
            information = await run_in_threadpool(read_client, server, client_id, token)
            return JSONResponse(information, headers=dict(NO_STORE_HEADERS))
        if request.method == "PUT":
            body = await read_registration(request)
            information = await run_in_threadpool(
                update_client, server, client_id, token, body, client_ip(request)
            )
            return JSONResponse(information, headers=dict(NO_STORE_HEADERS))
        await run_in_threadpool(remove_client, server, client_id, token, client_ip(request))
        return Response(status_code=204, headers=dict(NO_STORE_HEADERS))

    return [
        Route("/register", allow_cors(register, ["POST"]), methods=["POST", "OPTIONS"]),
        Route(
            "/register/{client_id}",
            allow_cors(manage, ["GET", "PUT", "DELETE"]),
            methods=["GET", "PUT", "DELETE", "OPTIONS"],
        ),
    ]
