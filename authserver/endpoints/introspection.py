"""The introspection endpoint (RFC 7662 §2).

Only authenticated confidential clients may call it (others get 401 ``invalid_client``), and
a client learns only about its own tokens: anything unknown, expired, revoked, for another
audience or issued to another client is ``{"active": false}`` (RFC 7662 §2.2). Active access
tokens answer ``scope``, ``client_id``, ``sub``, ``aud``, ``iss``, ``exp``, ``iat``, ``jti`` and
``token_type: "Bearer"``; active refresh tokens answer ``token_type: "refresh_token"``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from authserver.clients.authentication import authenticate_client
from authserver.clients.credentials import presented_credentials
from authserver.context import AuthServer
from authserver.endpoints.bodies import FormRequest, read_oauth_form
from authserver.endpoints.cors import allow_cors
from authserver.endpoints.responses import error_response, method_not_allowed
from authserver.errors import NO_STORE_HEADERS, InvalidRequestError, OAuthError
from authserver.oauth.resources import known_resources
from authserver.oauth.tokens import decode_access_token
from authserver.storage.client_rows import ClientState
from authserver.storage.crypto import hash_token
from authserver.storage.models import AccessToken, Grant, RefreshToken

INACTIVE: dict[str, Any] = {"active": False}
MAX_TOKEN_LENGTH = 8192


def _access_token_info(
    server: AuthServer, session: Session, client: ClientState, claims: dict[str, Any], now: int
) -> dict[str, Any]:
    leeway = server.settings.leeway_seconds
    if claims.get("client_id") != client.client_id:
        return INACTIVE
    if claims.get("aud") not in known_resources(server.settings):
        return INACTIVE
    exp, nbf = claims.get("exp"), claims.get("nbf", 0)
    if not isinstance(exp, int) or exp <= now or (isinstance(nbf, int) and nbf > now + leeway):
        return INACTIVE
    row = session.get(AccessToken, str(claims["jti"]))
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        return INACTIVE
    return {
        "active": True,
        "scope": claims.get("scope", ""),
        "client_id": claims["client_id"],
        "sub": claims.get("sub"),
        "aud": claims["aud"],
        "iss": claims["iss"],
        "exp": exp,
        "iat": claims.get("iat"),
        "jti": claims["jti"],
        "token_type": "Bearer",
    }


def _refresh_token_info(
    session: Session, client: ClientState, token: str, now: int
) -> dict[str, Any]:
    row = session.get(RefreshToken, hash_token(token))
    if row is None or row.client_id != client.client_id:
        return INACTIVE
    if row.revoked_at is not None or row.rotated_at is not None or row.expires_at <= now:
        return INACTIVE
    grant = session.get(Grant, row.grant_id)
    if grant is None or grant.revoked_at is not None or grant.expires_at <= now:
        return INACTIVE
    return {
        "active": True,
        "scope": row.scope,
        "client_id": row.client_id,
        "sub": row.subject,
        "aud": row.resource,
        "exp": min(row.expires_at, grant.expires_at),
        "iat": row.issued_at,
        "token_type": "refresh_token",
    }


def introspect(server: AuthServer, request: FormRequest) -> dict[str, Any]:
    """Authenticate the (confidential) client and describe the token (blocking)."""
    token = request.form.get("token")
    if token is None:
        raise InvalidRequestError("token is required")
    claims = decode_access_token(server, token) if len(token) <= MAX_TOKEN_LENGTH else None
    now = server.now()
    failure: OAuthError | None = None
    answer: dict[str, Any] = INACTIVE
    with server.database.transaction() as session:
        try:
            credentials = presented_credentials(request.headers, request.form)
            client = authenticate_client(
                server, session, credentials, now=now, confidential_only=True
            )
            if claims is not None:
                answer = _access_token_info(server, session, client, claims, now)
            elif token and len(token) <= MAX_TOKEN_LENGTH:
                answer = _refresh_token_info(session, client, token, now)
        except OAuthError as exc:
            failure = exc
    if failure is not None:
        raise failure
    return answer


def routes(server: AuthServer) -> list[BaseRoute]:
    """``/introspect`` (POST, CORS allowed)."""

    async def introspection(request: Request) -> Response:
        if request.method != "POST":
            return method_not_allowed("POST")
        try:
            parsed = await read_oauth_form(request)
            body = await run_in_threadpool(introspect, server, parsed)
        except OAuthError as exc:
            return error_response(exc)
        return JSONResponse(body, headers=dict(NO_STORE_HEADERS))

    endpoint = allow_cors(introspection, ["POST"])
    return [Route("/introspect", endpoint, methods=["GET", "POST", "OPTIONS"])]
