"""The revocation endpoint (RFC 7009 §2).

A refresh token revokes its whole grant (every refresh and access token of it); an access token
(a JWT this server signed) marks its ``jti`` revoked, which the resource server's revocation view
picks up. ``token_type_hint`` is optional and only a hint. Unknown tokens, and tokens of another
client, give 200 and change nothing (RFC 7009 §2.2). The client authenticates with its
registered method (public clients name themselves with ``client_id``).
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from authserver.clients.authentication import authenticate_client
from authserver.clients.credentials import presented_credentials
from authserver.context import AuthServer
from authserver.endpoints.bodies import FormRequest, read_oauth_form
from authserver.endpoints.cors import allow_cors
from authserver.endpoints.responses import error_response, method_not_allowed
from authserver.errors import NO_STORE_HEADERS, InvalidRequestError, OAuthError
from authserver.oauth.tokens import decode_access_token
from authserver.storage.audit import record_event
from authserver.storage.crypto import hash_token
from authserver.storage.models import RefreshToken
from authserver.storage.revocation import revoke_access_token, revoke_grant

MAX_TOKEN_LENGTH = 8192


def revoke(server: AuthServer, request: FormRequest) -> None:
    """Authenticate the client and revoke the token if it is that client's (blocking)."""
    token = request.form.get("token")
    if not token:
        raise InvalidRequestError("token is required")
    if len(token) > MAX_TOKEN_LENGTH:
        return
    claims = decode_access_token(server, token)  # outside the transaction (key store reads)
    now = server.now()
    failure: OAuthError | None = None
    with server.database.transaction() as session:
        try:
            credentials = presented_credentials(request.headers, request.form)
            client = authenticate_client(server, session, credentials, now=now)
            if claims is not None:
                if claims.get("client_id") == client.client_id:
                    if revoke_access_token(session, str(claims["jti"]), now=now):
                        record_event(
                            session,
                            "access_token_revoked",
                            at=now,
                            client_id=client.client_id,
                            subject=str(claims.get("sub")),
                            ip=request.ip,
                            jti=claims["jti"],
                        )
            else:
                row = session.get(RefreshToken, hash_token(token))
                if row is not None and row.client_id == client.client_id:
                    revoke_grant(session, row.grant_id, now=now, reason="revoked_by_client")
                    record_event(
                        session,
                        "grant_revoked",
                        at=now,
                        client_id=client.client_id,
                        subject=row.subject,
                        ip=request.ip,
                        grant_id=row.grant_id,
                    )
        except OAuthError as exc:
            failure = exc
    if failure is not None:
        raise failure


def routes(server: AuthServer) -> list[BaseRoute]:
    """``/revoke`` (POST, CORS allowed)."""

    async def revocation(request: Request) -> Response:
        if request.method != "POST":
            return method_not_allowed("POST")
        try:
            parsed = await read_oauth_form(request)
            await run_in_threadpool(revoke, server, parsed)
        except OAuthError as exc:
            return error_response(exc)
        return Response(status_code=200, headers=dict(NO_STORE_HEADERS))

    return [Route("/revoke", allow_cors(revocation, ["POST"]), methods=["GET", "POST", "OPTIONS"])]
