"""The token verifier of resource-server-only mode: JWT access tokens (RFC 9068, or plain JWTs
with this resource as ``aud``) by the external issuer's JWKS, anything else by RFC 7662
introspection when the resource server has introspection credentials."""

from __future__ import annotations

import re

from resourceserver.errors import InvalidTokenError
from resourceserver.external.introspection import IntrospectionVerifier
from resourceserver.principal import Principal
from resourceserver.verifier import JwtTokenVerifier

#: Three base64url segments: a JWS, checked locally; any other token is opaque.
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


class ExternalTokenVerifier:
    """Local JWT checks first; opaque tokens go to introspection (or are refused without it)."""

    def __init__(
        self, jwt: JwtTokenVerifier, introspection: IntrospectionVerifier | None = None
    ) -> None:
        self.jwt = jwt
        self.introspection = introspection

    async def verify(self, token: str) -> Principal:
        if _COMPACT_JWS.fullmatch(token) is not None or self.introspection is None:
            return await self.jwt.verify(token)
        if not token.isascii() or len(token) > 8 * 1024:
            raise InvalidTokenError("the access token is malformed", detail="size")
        return await self.introspection.verify(token)
