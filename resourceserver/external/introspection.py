"""Opaque access tokens checked at the external issuer's introspection endpoint (RFC 7662).

:class:`IntrospectionVerifier` POSTs the token with the resource server's client credentials
(HTTP Basic, RFC 7662 §2.1) and accepts it only when the answer is ``active``, names the
configured issuer (when it names one), has this resource among its ``aud`` (RFC 8707: a token
for another resource is refused, S80), is not expired, is a bearer access token (a refresh
token is never accepted on the MCP path), and names a subject.

Positive answers are cached by the token's SHA-256 for ``cache_seconds`` at most and never past
the token's ``exp`` (RFC 7662 §4: a cache trades revocation latency for load); negative ones are
not cached. An endpoint that cannot be reached is :class:`~resourceserver.jwks.KeySourceError`
(503), never a refusal of the token.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from resourceserver.errors import InvalidTokenError
from resourceserver.external.issuer import ExternalIssuer, FetchFailedError
from resourceserver.jwks import KeySourceError
from resourceserver.principal import Principal
from resourceserver.settings import ResourceServerSettings
from resourceserver.verifier import plain_jwt_principal

#: ``token_type`` values (compared case-insensitively) of an access token usable here.
_BEARER_TYPES = frozenset({"bearer", "access_token", "n_a"})


class IntrospectionVerifier:
    """A :class:`~resourceserver.verifier.TokenVerifier` asking the issuer (RFC 7662)."""

    def __init__(
        self,
        settings: ResourceServerSettings,
        issuer: ExternalIssuer,
        credentials: tuple[str, str],
        *,
        cache_seconds: float = 60.0,
        cache_size: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._issuer = issuer
        self._credentials = credentials
        self._cache_seconds = cache_seconds
        self._cache_size = cache_size
        self._clock = clock
        self._cache: OrderedDict[bytes, tuple[float, Principal]] = OrderedDict()
        #: How many introspection requests were sent (tests read it; no timing depends on it).
        self.requests = 0

    async def verify(self, token: str) -> Principal:
        digest = hashlib.sha256(token.encode("utf-8")).digest()
        now = self._clock()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            self._cache.move_to_end(digest)
            return cached[1]
        self._cache.pop(digest, None)
        answer = await self._introspect(token)
        principal = self._principal(answer, digest, now)
        until = min(float(principal.expires_at), now + self._cache_seconds)
        if until > now and self._cache_size:
            self._cache[digest] = (until, principal)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return principal

    async def _introspect(self, token: str) -> dict[str, Any]:
        endpoint = (await self._issuer.metadata()).introspection_endpoint
        if endpoint is None:
            raise KeySourceError(f"{self._issuer.issuer} publishes no introspection_endpoint")
        form = {"token": token, "token_type_hint": "access_token"}
        self.requests += 1
        try:
            return await self._issuer.fetcher.post_form(endpoint, form, self._credentials)
        except FetchFailedError as error:
            raise KeySourceError(f"introspection failed: {error}") from error

    def _principal(self, answer: dict[str, Any], digest: bytes, now: float) -> Principal:
        if answer.get("active") is not True:
            raise InvalidTokenError("the access token is not active", detail="introspection")
        if "iss" in answer and answer["iss"] != self._issuer.issuer:
            raise InvalidTokenError("the access token issuer is not trusted", detail="iss")
        audience = answer.get("aud")
        audiences = [audience] if isinstance(audience, str) else audience
        if not isinstance(audiences, list) or self._settings.resource_url not in audiences:
            raise InvalidTokenError("the access token is not for this resource", detail="aud")
        token_type = answer.get("token_type")
        if isinstance(token_type, str) and token_type.lower() not in _BEARER_TYPES:
            raise InvalidTokenError("the token is not an access token", detail=token_type)
        if token_type is None and answer.get("token_type_hint") == "refresh_token":
            raise InvalidTokenError("the token is not an access token", detail="refresh")
        expires_at = answer.get("exp")
        if expires_at is None:
            expires_at = now + self._cache_seconds
        if isinstance(expires_at, bool) or not isinstance(expires_at, int | float):
            raise InvalidTokenError("the access token is malformed", detail="exp")
        if not math.isfinite(expires_at) or expires_at <= now - self._settings.leeway_seconds:
            raise InvalidTokenError("the access token expired", detail="exp")
        return plain_jwt_principal({**answer, "exp": int(expires_at)}, digest)
