"""Grants, tokens and consents written straight to the database for the CLI tests."""

from __future__ import annotations

from dataclasses import dataclass

from authserver.context import AuthServer
from authserver.storage.crypto import hash_token, new_id, new_token
from authserver.storage.models import AccessToken, Consent, Grant, RefreshToken

RESOURCE = "http://127.0.0.1:8000/mcp"


@dataclass(frozen=True)
class IssuedGrant:
    grant_id: str
    jti: str
    refresh_hash: str


def issue_grant(server: AuthServer, *, client_id: str, subject: str) -> IssuedGrant:
    """A live grant with one access token and one refresh token."""
    now = server.now()
    grant_id, jti, refresh_hash = new_id(), new_id(), hash_token(new_token())
    with server.database.transaction() as session:
        session.add(
            Grant(
                id=grant_id,
                client_id=client_id,
                subject=subject,
                scope="mcp",
                resource=RESOURCE,
                grant_type="authorization_code",
                code_hash=None,
                created_at=now,
                expires_at=now + 3600,
                revoked_at=None,
                revoked_reason=None,
            )
        )
        session.flush()
        session.add(
            AccessToken(
                jti=jti,
                grant_id=grant_id,
                client_id=client_id,
                subject=subject,
                scope="mcp",
                resource=RESOURCE,
                issued_at=now,
                expires_at=now + 600,
                revoked_at=None,
            )
        )
        session.add(
            RefreshToken(
                token_hash=refresh_hash,
                grant_id=grant_id,
                client_id=client_id,
                subject=subject,
                scope="mcp",
                resource=RESOURCE,
                issued_at=now,
                expires_at=now + 3600,
                rotated_at=None,
                revoked_at=None,
            )
        )
    return IssuedGrant(grant_id, jti, refresh_hash)


def remember_consent(server: AuthServer, *, user_id: str, client_id: str) -> str:
    """A live consent; returns its id."""
    now = server.now()
    consent_id = new_id()
    with server.database.transaction() as session:
        session.add(
            Consent(
                id=consent_id,
                user_id=user_id,
                client_id=client_id,
                scope="mcp",
                resource=RESOURCE,
                redirect_uri="http://127.0.0.1/callback",
                created_at=now,
                expires_at=now + 3600,
                revoked_at=None,
            )
        )
    return consent_id


def revoked(server: AuthServer, issued_jti: str, grant_id: str) -> tuple[bool, bool]:
    """Whether the access token ``issued_jti`` and the grant ``grant_id`` are revoked."""
    with server.database.transaction() as session:
        token = session.get(AccessToken, issued_jti)
        grant = session.get(Grant, grant_id)
        assert token is not None
        assert grant is not None
        return token.revoked_at is not None, grant.revoked_at is not None
