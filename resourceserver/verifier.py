"""Access-token verification for the resource server (RFC 9068 §4, RFC 8725).

This module holds the :class:`TokenVerifier` protocol the transport depends on. The JWT
implementation over a JWKS lives beside it.
"""

from __future__ import annotations

from typing import Protocol

from resourceserver.principal import Principal


class TokenVerifier(Protocol):
    """Turns a bearer token into a :class:`Principal` or raises ``InvalidTokenError``."""

    async def verify(self, token: str) -> Principal:
        """Validate ``token`` completely (signature, typ, iss, aud, time, revocation)."""
        ...


class RevocationView(Protocol):
    """What the authorization server tells the resource server about revoked tokens."""

    async def is_revoked(self, jti: str) -> bool:
        """True when the access token with this ``jti`` (or its whole grant) was revoked."""
        ...
