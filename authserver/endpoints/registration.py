"""Dynamic client registration (RFC 7591 §3) and its management protocol (RFC 7592 §2).

``POST /register`` takes a JSON object (``application/json``, at most 16 KiB; S48) and answers
201 with the registered metadata, a generated ``client_id`` (S46, S22), a ``client_secret``
for confidential clients only, and an RFC 7592 ``registration_access_token`` and
``registration_client_uri``. Secrets and registration tokens are stored only as hashes (S56).
Every attempt counts against a per-IP limit (``registration_rate_per_minute``; 429 with
``Retry-After``, S48). Software statements are refused (S47).

Idempotent re-registration (REAL-CLIENTS §4): a *public* (``none``) registration whose
normalised metadata is identical to that of a never-used dynamic client registered from the
same IP within ``unused_client_ttl`` returns that client again instead of creating a new row.
The repeated answer carries no ``registration_access_token`` and no
``registration_client_uri`` (both optional, RFC 7591 §3.2.1): the original registrant's token
is kept and keeps working, and whoever registered the same metadata again (possibly another
party behind the same address) gets the client to use but never the right to manage it
(RFC 7592). Clients that have obtained tokens, and confidential clients (whose secret cannot be
re-issued), are never reused: each such registration makes a new client. Never-used clients
are reaped after the TTL (:mod:`authserver.ops.reaper`).

``GET``/``PUT``/``DELETE /register/{client_id}`` need ``Authorization: Bearer <registration
access token>``; a missing or wrong token, or an unknown client, answer the same 401
``invalid_token``. ``PUT`` replaces the metadata under the same validation; the secret cannot
be chosen by the client (a client turned confidential receives a new one). ``DELETE`` removes
the client and revokes its grants and tokens, 204.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from authserver.clients.metadata import (
    MAX_BODY_BYTES,
    PUBLIC_AUTH_METHOD,
    ClientMetadata,
    normalise_registration,
)
from authserver.clients.store import delete_client, new_client_id
from authserver.context import AuthServer
from authserver.endpoints.bodies import OversizedBodyError, WrongMediaTypeError, read_json_object
from authserver.endpoints.client_address import client_ip
from authserver.endpoints.cors import allow_cors
from authserver.endpoints.responses import error_response
from authserver.errors import (
    NO_STORE_HEADERS,
    AccessDeniedError,
    InvalidClientMetadataError,
    InvalidTokenError,
    OAuthError,
    SlowDownError,
)
from authserver.storage import rate_limits
from authserver.storage.audit import record_event
from authserver.storage.crypto import hash_token, new_token, token_matches
from authserver.storage.models import Client

KIND = "dynamic"
RATE_WINDOW_SECONDS = 60


class UnsupportedMediaTypeError(InvalidClientMetadataError):
    """The request body is not ``application/json``."""

    status_code = 415


class BodyTooLargeError(InvalidClientMetadataError):
    """The request body is larger than :data:`MAX_BODY_BYTES`."""

    status_code = 413


class RegistrationTokenError(InvalidTokenError):
    """RFC 7592 §2: the registration access token is missing or wrong (or the client unknown)."""

    def headers(self) -> dict[str, str]:
        headers = super().headers()
        headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
        return headers


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


def _normalise(server: AuthServer, body: dict[str, Any]) -> ClientMetadata:
    return normalise_registration(body, scopes_supported=server.settings.scopes_supported)


def _apply_metadata(client: Client, metadata: ClientMetadata, *, now: int) -> None:
    fingerprint = metadata.fingerprint(KIND, client.registered_from or "")
    metadata.apply_to(client, now=now, fingerprint=fingerprint)


def _client_information(
    server: AuthServer,
    client: Client,
    *,
    registration_token: str | None = None,
    secret: str | None = None,
    manageable: bool = True,
) -> dict[str, Any]:
    """The client information response (RFC 7591 §3.2.1, RFC 7592 §3).

    ``manageable=False`` leaves out ``registration_client_uri`` (and any token): the caller
    may use the client but not manage it.
    """
    body: dict[str, Any] = dict(client.client_metadata)
    body["client_id"] = client.client_id
    body["client_id_issued_at"] = client.created_at
    if secret is not None:
        body["client_secret"] = secret
    if client.token_endpoint_auth_method != PUBLIC_AUTH_METHOD:
        body["client_secret_expires_at"] = client.secret_expires_at
    if registration_token is not None:
        body["registration_access_token"] = registration_token
    if manageable:
        body["registration_client_uri"] = server.settings.endpoint_url(
            f"/register/{client.client_id}"
        )
    return body


def _check_rate(server: AuthServer, ip: str) -> None:
    with server.database.transaction() as session:
        wait = rate_limits.hit(
            session,
            f"register:ip:{ip}",
            now=server.now(),
            window=RATE_WINDOW_SECONDS,
            limit=server.settings.registration_rate_per_minute,
        )
    if wait:
        raise SlowDownError(wait, detail=f"registration rate exceeded from {ip}")


def _find_reusable(
    server: AuthServer, session: Session, fingerprint: str, ip: str
) -> Client | None:
    now = server.now()
    return session.scalars(
        select(Client)
        .where(
            Client.metadata_fingerprint == fingerprint,
            Client.kind == KIND,
            Client.registered_from == ip,
            Client.token_endpoint_auth_method == PUBLIC_AUTH_METHOD,
            Client.last_used_at.is_(None),
            Client.disabled.is_(False),
            Client.created_at > now - server.settings.unused_client_ttl,
        )
        .order_by(Client.created_at.desc())
        .limit(1)
    ).first()


def register_client(server: AuthServer, body: dict[str, Any], ip: str) -> dict[str, Any]:
    """Validate ``body`` and register (or, idempotently, re-issue) a client; the response body."""
    metadata = _normalise(server, body)
    now = server.now()
    registration_token = new_token()
    with server.database.transaction() as session:
        fingerprint = metadata.fingerprint(KIND, ip)
        if metadata.is_public:
            existing = _find_reusable(server, session, fingerprint, ip)
            if existing is not None:
                # The management token stays with the first registrant (see module docs).
                record_event(
                    session,
                    "client_registration_repeated",
                    at=now,
                    client_id=existing.client_id,
                    ip=ip,
                )
                return _client_information(server, existing, manageable=False)
        secret = None if metadata.is_public else new_token()
        client = Client(
            client_id=new_client_id(session),
            kind=KIND,
            secret_hash=hash_token(secret) if secret else None,
            secret_expires_at=0,
            registration_token_hash=hash_token(registration_token),
            created_at=now,
            last_used_at=None,
            expires_at=None,
            disabled=False,
            registered_from=ip,
        )
        _apply_metadata(client, metadata, now=now)
        session.add(client)
        record_event(
            session,
            "client_registered",
            at=now,
            client_id=client.client_id,
            ip=ip,
            auth_method=metadata.token_endpoint_auth_method,
        )
        return _client_information(
            server, client, registration_token=registration_token, secret=secret
        )


def _authorised_client(server: AuthServer, session: Session, client_id: str, token: str) -> Client:
    client = session.get(Client, client_id) if len(client_id) <= 2048 else None
    stored = client.registration_token_hash if client is not None else None
    if client is None or client.kind != KIND or client.disabled:
        stored = None
    if not token_matches(token, stored) or client is None:
        raise RegistrationTokenError("the registration access token is not valid")
    return client


def read_client(server: AuthServer, client_id: str, token: str) -> dict[str, Any]:
    """RFC 7592 §2.1: the current client information."""
    with server.database.transaction() as session:
        client = _authorised_client(server, session, client_id, token)
        return _client_information(server, client)


def update_client(
    server: AuthServer, client_id: str, token: str, body: dict[str, Any], ip: str
) -> dict[str, Any]:
    """RFC 7592 §2.2: replace the client's metadata; the new client information."""
    with server.database.transaction() as session:
        client = _authorised_client(server, session, client_id, token)
        if body.get("client_id") != client.client_id:
            raise InvalidClientMetadataError("client_id in the body must equal the client's id")
        offered_secret = body.get("client_secret")
        if offered_secret is not None and not (
            isinstance(offered_secret, str) and token_matches(offered_secret, client.secret_hash)
        ):
            raise InvalidClientMetadataError("client_secret cannot be chosen by the client")
        metadata = _normalise(server, body)
        now = server.now()
        secret: str | None = None
        if metadata.is_public:
            client.secret_hash = None
        elif client.secret_hash is None:
            secret = new_token()
            client.secret_hash = hash_token(secret)
            client.secret_expires_at = 0
        _apply_metadata(client, metadata, now=now)
        record_event(session, "client_updated", at=now, client_id=client.client_id, ip=ip)
        return _client_information(server, client, secret=secret)


def remove_client(server: AuthServer, client_id: str, token: str, ip: str) -> None:
    """RFC 7592 §2.3: delete the client and revoke what it holds."""
    with server.database.transaction() as session:
        client = _authorised_client(server, session, client_id, token)
        now = server.now()
        record_event(session, "client_deleted", at=now, client_id=client.client_id, ip=ip)
        delete_client(session, client, now, reason="client_deleted")


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
        await run_in_threadpool(_check_rate, server, ip)
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
