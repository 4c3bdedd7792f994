"""Rows the benchmarks need, written straight to the database in bulk."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert

from authserver.context import AuthServer
from authserver.storage.crypto import hash_token, new_id, new_token
from authserver.storage.models import (
    AccessToken,
    AuthorizationCode,
    Client,
    Grant,
    RefreshToken,
    User,
)

REDIRECT_URI = "http://127.0.0.1/callback"
CHUNK = 5000


def client_row(
    server: AuthServer, client_id: str, *, secret: str | None, grant_types: list[str]
) -> dict[str, Any]:
    """The column values of one static client (confidential when ``secret`` is given)."""
    now = server.now()
    return {
        "client_id": client_id,
        "kind": "static",
        "client_name": f"bench {client_id[:8]}",
        "redirect_uris": [REDIRECT_URI],
        "grant_types": grant_types,
        "response_types": ["code"],
        "token_endpoint_auth_method": "client_secret_post" if secret else "none",
        "scope": "",
        "client_metadata": {"client_name": "bench"},
        "secret_hash": hash_token(secret) if secret else None,
        "secret_expires_at": 0,
        "registration_token_hash": None,
        "metadata_fingerprint": None,
        "created_at": now,
        "updated_at": now,
        "last_used_at": None,
        "expires_at": None,
        "disabled": False,
        "registered_from": None,
    }


def insert_rows(server: AuthServer, model: type[Any], rows: list[dict[str, Any]]) -> None:
    """Bulk-insert ``rows`` in chunks, one transaction per chunk."""
    for start in range(0, len(rows), CHUNK):
        with server.database.transaction() as session:
            session.execute(insert(model), rows[start : start + CHUNK])


def confidential_clients(server: AuthServer, count: int, secret: str) -> list[str]:
    """``count`` client_credentials clients sharing ``secret``; their ids."""
    ids = [new_id() for _ in range(count)]
    rows = [
        client_row(server, client_id, secret=secret, grant_types=["client_credentials"])
        for client_id in ids
    ]
    insert_rows(server, Client, rows)
    return ids


def public_client(
    server: AuthServer, grant_types: tuple[str, ...] = ("authorization_code",)
) -> str:
    """One public client (``authorization_code`` unless told otherwise); its id."""
    client_id = new_id()
    insert_rows(
        server,
        Client,
        [client_row(server, client_id, secret=None, grant_types=list(grant_types))],
    )
    return client_id


def user(server: AuthServer) -> str:
    """One user (its password is never used); its id."""
    now = server.now()
    user_id = new_id()
    row = {
        "id": user_id,
        "username": f"bench-{user_id[:8]}",
        "username_key": f"bench-{user_id[:8]}",  # already folded (lower-case hex)
        "password_hash": "unused",
        "is_admin": False,
        "disabled": False,
        "created_at": now,
        "password_changed_at": now,
    }
    insert_rows(server, User, [row])
    return user_id


@dataclass(frozen=True)
class SeededCode:
    """A plain code and its PKCE verifier."""

    code: str
    verifier: str


def codes(
    server: AuthServer, client_id: str, subject: str, count: int, ttl: int = 600
) -> list[SeededCode]:
    """``count`` unconsumed codes as ``/authorize`` stores them (valid ``ttl`` seconds)."""
    now = server.now()
    made: list[SeededCode] = []
    rows: list[dict[str, Any]] = []
    for _ in range(count):
        code, verifier = new_token(), secrets.token_urlsafe(32)
        digest = hashlib.sha256(verifier.encode()).digest()
        challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        made.append(SeededCode(code, verifier))
        rows.append(
            {
                "code_hash": hash_token(code),
                "client_id": client_id,
                "subject": subject,
                "redirect_uri": REDIRECT_URI,
                "redirect_uri_sent": True,
                "scope": "mcp",
                "resource": server.settings.resource_url,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
                "created_at": now,
                "expires_at": now + ttl,
                "consumed_at": None,
            }
        )
    insert_rows(server, AuthorizationCode, rows)
    return made


def code_form(client_id: str, seeded: SeededCode) -> dict[str, str]:
    """The token request redeeming ``seeded``."""
    return {
        "grant_type": "authorization_code",
        "code": seeded.code,
        "redirect_uri": REDIRECT_URI,
        "code_verifier": seeded.verifier,
        "client_id": client_id,
    }


def credentials_form(client_id: str, secret: str) -> dict[str, str]:
    """A client_credentials request (client_secret_post)."""
    return {
        "grant_type": "client_credentials",
        "client_id": client_id,
        "client_secret": secret,
        "scope": "mcp",
    }


def refresh_tokens(server: AuthServer, client_id: str, subject: str, count: int) -> list[str]:
    """``count`` live refresh tokens, each of its own authorization_code grant; the plain tokens."""
    now = server.now()
    resource = server.settings.resource_url
    plain: list[str] = []
    grants: list[dict[str, Any]] = []
    tokens: list[dict[str, Any]] = []
    for _ in range(count):
        grant_id, token = new_id(), new_token()
        plain.append(token)
        grants.append(
            {
                "id": grant_id,
                "client_id": client_id,
                "subject": subject,
                "scope": "mcp",
                "resource": resource,
                "grant_type": "authorization_code",
                "code_hash": None,
                "created_at": now,
                "expires_at": now + 86400,
                "revoked_at": None,
                "revoked_reason": None,
            }
        )
        tokens.append(
            {
                "token_hash": hash_token(token),
                "grant_id": grant_id,
                "client_id": client_id,
                "subject": subject,
                "scope": "mcp",
                "resource": resource,
                "issued_at": now,
                "expires_at": now + 86400,
                "rotated_at": None,
                "revoked_at": None,
            }
        )
    insert_rows(server, Grant, grants)
    insert_rows(server, RefreshToken, tokens)
    return plain


def access_token_rows(
    server: AuthServer, count: int, client_ids: list[str], *, expired: bool
) -> None:
    """``count`` access-token rows (the records of issued JWTs), live or already expired."""
    now = server.now()
    resource = server.settings.resource_url
    expires_at = now - 3600 if expired else now + 3600
    for start in range(0, count, CHUNK):
        rows = [
            {
                "jti": secrets.token_hex(16),
                "grant_id": None,
                "client_id": client_ids[index % len(client_ids)],
                "subject": client_ids[index % len(client_ids)],
                "scope": "mcp",
                "resource": resource,
                "issued_at": expires_at - 3600,
                "expires_at": expires_at,
                "revoked_at": None,
            }
            for index in range(start, min(count, start + CHUNK))
        ]
        with server.database.transaction() as session:
            session.execute(insert(AccessToken), rows)


def refresh_form(client_id: str, token: str) -> dict[str, str]:
    """A refresh_token request of a public client."""
    return {"grant_type": "refresh_token", "refresh_token": token, "client_id": client_id}
