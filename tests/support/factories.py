"""Rows the tests need, written straight to the database."""

from __future__ import annotations

from typing import Any

from authserver.accounts.users import new_user
from authserver.clients.metadata import ClientMetadata, new_client
from authserver.context import AuthServer
from authserver.storage.crypto import hash_token, new_id, new_token
from authserver.storage.models import Client, User


def create_user(
    server: AuthServer,
    username: str = "alice",
    password: str = "correct horse battery",
    *,
    must_change_password: bool = False,
) -> User:
    """A local user with an argon2 password hash (a one-time password only when asked)."""
    user = new_user(server, username, password, must_change_password=must_change_password)
    with server.database.transaction() as session:
        session.add(user)
    return user


def create_client(
    server: AuthServer,
    *,
    client_id: str | None = None,
    redirect_uris: list[str] | None = None,
    confidential: bool = False,
    auth_method: str | None = None,
    scope: str = "",
    grant_types: list[str] | None = None,
    client_name: str = "Test Client",
    kind: str = "static",
    **extra: Any,
) -> tuple[Client, str | None]:
    """A client row; returns it and its plain secret (None for public clients)."""
    secret = new_token() if confidential else None
    method = auth_method or ("client_secret_basic" if confidential else "none")
    metadata = ClientMetadata(
        redirect_uris=tuple(redirect_uris or ["http://127.0.0.1/callback"]),
        grant_types=tuple(grant_types or ["authorization_code", "refresh_token"]),
        response_types=("code",),
        token_endpoint_auth_method=method,
        scope=scope,
        client_name=client_name,
        extra=extra,
    )
    client = new_client(
        client_id or new_id(),
        kind,
        metadata,
        now=server.now(),
        secret_hash=hash_token(secret) if secret else None,
    )
    with server.database.transaction() as session:
        session.add(client)
    return client, secret
