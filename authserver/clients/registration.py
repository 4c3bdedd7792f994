"""Dynamic client registration (RFC 7591 §3) and its management protocol (RFC 7592 §2): what
``/register`` does once the body is read (:mod:`authserver.endpoints.registration`).

Registered metadata is validated by :mod:`authserver.clients.metadata`; the generated
``client_id`` names no client or user (S46, S22); a ``client_secret`` is made for confidential
clients only; secrets and registration access tokens are stored only as hashes (S56). Every
attempt counts against a per-IP limit (``registration_rate_per_minute``; S48).

Idempotent re-registration (REAL-CLIENTS §4): a *public* (``none``) registration whose
normalised metadata is identical to that of a never-used dynamic client registered from the
same IP within ``unused_client_ttl`` returns that client again, without a
``registration_access_token`` or ``registration_client_uri``, and in the same transaction ends
the first registrant's management of it (its registration access token is dropped): a client
handed to a second registrant is managed by no one, so the first one — perhaps an attacker who
registered a popular client's metadata first — can neither point it elsewhere nor delete it
(RFC 7592, S98). The candidate row and every management request take a row lock (``SELECT …
FOR UPDATE``), so an update racing the repeat either lands first (and changes the fingerprint,
so the client is not reused) or finds its token gone. Confidential clients and clients that
obtained tokens are never reused.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from authserver.clients.metadata import (
    PUBLIC_AUTH_METHOD,
    ClientMetadata,
    new_client,
    normalise_registration,
)
from authserver.clients.store import delete_client, new_client_id
from authserver.context import AuthServer
from authserver.errors import InvalidClientMetadataError, RegistrationTokenError, SlowDownError
from authserver.storage import rate_limits
from authserver.storage.audit import record_event
from authserver.storage.crypto import hash_token, new_token, token_matches
from authserver.storage.models import Client, ClientKind
from authserver.text_input import NUL

RATE_WINDOW_SECONDS = 60


def _normalise(server: AuthServer, body: dict[str, Any]) -> ClientMetadata:
    return normalise_registration(body, scopes_supported=server.settings.scopes_supported)


def _apply_metadata(client: Client, metadata: ClientMetadata, *, now: int) -> None:
    fingerprint = metadata.fingerprint(ClientKind.DYNAMIC, client.registered_from or "")
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


def check_rate(server: AuthServer, ip: str) -> None:
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
            Client.kind == ClientKind.DYNAMIC,
            Client.registered_from == ip,
            Client.token_endpoint_auth_method == PUBLIC_AUTH_METHOD,
            Client.last_used_at.is_(None),
            Client.disabled.is_(False),
            Client.created_at > now - server.settings.unused_client_ttl,
        )
        .order_by(Client.created_at.desc())
        .limit(1)
        .with_for_update()
    ).first()


def register_client(server: AuthServer, body: dict[str, Any], ip: str) -> dict[str, Any]:
    """Validate ``body`` and register (or, idempotently, re-issue) a client; the response body."""
    metadata = _normalise(server, body)
    now = server.now()
    registration_token = new_token()
    with server.database.transaction() as session:
        fingerprint = metadata.fingerprint(ClientKind.DYNAMIC, ip)
        if metadata.is_public:
            existing = _find_reusable(server, session, fingerprint, ip)
            if existing is not None:
                # Handed to a second registrant: managed by no one from now on (S98).
                existing.registration_token_hash = None
                record_event(
                    session,
                    "client_registration_repeated",
                    at=now,
                    client_id=existing.client_id,
                    ip=ip,
                )
                return _client_information(server, existing, manageable=False)
        secret = None if metadata.is_public else new_token()
        client = new_client(
            new_client_id(session),
            ClientKind.DYNAMIC,
            metadata,
            now=now,
            fingerprint=fingerprint,
            secret_hash=hash_token(secret) if secret else None,
            registration_token_hash=hash_token(registration_token),
            registered_from=ip,
        )
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
    # S102: an id with a NUL names no client (and must not reach SQL).
    known_shape = len(client_id) <= 2048 and NUL not in client_id
    client = session.get(Client, client_id, with_for_update=True) if known_shape else None
    stored = client.registration_token_hash if client is not None else None
    if client is None or client.kind != ClientKind.DYNAMIC or client.disabled:
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
