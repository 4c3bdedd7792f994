"""Authorization codes written straight to the database, as ``/authorize`` would make them."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass

from authserver.context import AuthServer
from authserver.oauth.resources import canonical_resource
from authserver.storage.crypto import hash_token, new_token
from authserver.storage.models import AuthorizationCode


def new_verifier() -> str:
    """A fresh PKCE code verifier (43 characters)."""
    return secrets.token_urlsafe(32)


def s256_challenge(verifier: str) -> str:
    """The S256 code challenge of ``verifier``."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class IssuedCode:
    """A plain code and what redeeming it needs."""

    code: str
    verifier: str
    redirect_uri: str
    client_id: str
    subject: str


def create_code(
    server: AuthServer,
    *,
    client_id: str,
    subject: str,
    redirect_uri: str = "http://127.0.0.1/callback",
    scope: str = "mcp",
    resource: str | None = None,
    verifier: str | None = None,
    challenge_method: str | None = "S256",
    with_challenge: bool = True,
    redirect_uri_sent: bool = True,
    ttl: int | None = None,
) -> IssuedCode:
    """Insert an unconsumed code row (stored hashed); return the plain code and verifier."""
    now = server.now()
    code = new_token()
    verifier = verifier or new_verifier()
    row = AuthorizationCode(
        code_hash=hash_token(code),
        client_id=client_id,
        subject=subject,
        redirect_uri=redirect_uri,
        redirect_uri_sent=redirect_uri_sent,
        scope=scope,
        resource=resource or canonical_resource(server.settings.resource_url),
        code_challenge=s256_challenge(verifier) if with_challenge else None,
        code_challenge_method=challenge_method if with_challenge else None,
        created_at=now,
        expires_at=now + (ttl if ttl is not None else server.settings.authorization_code_ttl),
        consumed_at=None,
    )
    with server.database.transaction() as session:
        session.add(row)
    return IssuedCode(code, verifier, redirect_uri, client_id, subject)


def code_form(issued: IssuedCode, **extra: str) -> dict[str, str]:
    """The form of a token request redeeming ``issued`` as a public client."""
    form = {
        "grant_type": "authorization_code",
        "code": issued.code,
        "redirect_uri": issued.redirect_uri,
        "code_verifier": issued.verifier,
        "client_id": issued.client_id,
    }
    form.update(extra)
    return {key: value for key, value in form.items() if value != ""}


def refresh_form(refresh_token: str, client_id: str, **extra: str) -> dict[str, str]:
    """The form of a refresh request as a public client."""
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": client_id}
    form.update(extra)
    return {key: value for key, value in form.items() if value != ""}
