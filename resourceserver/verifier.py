"""Access-token verification for the resource server (RFC 9068 §4, RFC 8725).

This module holds the :class:`TokenVerifier` protocol the transport depends on and
:class:`JwtTokenVerifier`, its implementation over a JWK Set (:mod:`resourceserver.jwks`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import math
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol

from joserfc.jwa import JWSAlgModel
from joserfc.jwk import Key, KeySet
from joserfc.jws import JWSRegistry

from resourceserver.errors import InvalidTokenError
from resourceserver.jwks import KeySource
from resourceserver.metrics import TOKEN_CACHE, labelled
from resourceserver.principal import Principal
from resourceserver.settings import ResourceServerSettings


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


#: Media types of an RFC 9068 access token (``typ``), compared case-insensitively (RFC 7515 §4.1.9).
_ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt"})
#: ``typ`` values of a plain JWT access token (an external issuer without RFC 9068).
_PLAIN_JWT_TYPES = frozenset({"jwt", "application/jwt"})
#: Three non-empty base64url segments: the only serialization accepted (no JSON, no JWE).
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
_MAX_KID_LENGTH = 128
_MALFORMED = "the access token is malformed"


class JwtTokenVerifier:
    """Validates RFC 9068 JWT access tokens (RFC 9068 §4, RFC 8725 §3).

    Checks, in order: size and compact-JWS shape; header (``alg`` on the allowlist, ``typ``
    ``at+jwt``, ``kid`` present, no ``crit``; ``jku``/``x5u``/``jwk``/``x5c`` are never used);
    signature with the key named by ``kid`` (an unknown ``kid`` causes at most one forced JWKS
    reload per ``settings.jwks_refresh_min_interval``); claims (exact ``iss``, ``aud`` containing
    ``settings.resource_url``, ``exp``/``nbf``/``iat`` with ``settings.leeway_seconds``, ``sub``,
    ``client_id``, ``jti``, ``scope``); revocation.

    Verified tokens are cached by SHA-256 of the token (bounded LRU) until they expire; a cached
    token is still checked for expiry and revocation on every call.

    ``none`` and HMAC algorithms are refused at construction even when configured (RFC 8725
    §3.1: a MAC keyed by what a JWKS publishes is forgeable).

    With ``plain_jwt`` (tokens of an external issuer), a JWT access token without RFC 9068's
    ``typ`` is accepted too (``typ`` ``JWT`` or absent) when every claim check passes: the
    ``aud`` check is what keeps an ID token or a token for another resource out. Its client is
    ``client_id``, else ``azp`` or ``cid``; its scopes ``scope`` or else ``scp`` (a string or
    a list); without a ``jti`` the token's digest names it.

    :meth:`verify` raises :class:`InvalidTokenError` for every bad token, and
    :class:`resourceserver.jwks.KeySourceError` only when no key set was ever obtained.
    """

    def __init__(
        self,
        settings: ResourceServerSettings,
        keys: KeySource,
        *,
        revocation: RevocationView | None = None,
        clock: Callable[[], float] = time.time,
        max_token_bytes: int = 8 * 1024,
        plain_jwt: bool = False,
    ) -> None:
        forbidden = [
            name
            for name in settings.allowed_algorithms
            if name.lower() == "none" or name.upper().startswith("HS")
        ]
        if forbidden or not settings.allowed_algorithms:
            raise ValueError(f"access tokens need asymmetric algorithms, got {forbidden or 'none'}")
        registry = JWSRegistry(algorithms=list(settings.allowed_algorithms))
        self._algorithms: dict[str, JWSAlgModel] = {
            name: registry.get_alg(name) for name in settings.allowed_algorithms
        }
        self._settings = settings
        self._plain_jwt = plain_jwt
        self._types = _ACCESS_TOKEN_TYPES | (_PLAIN_JWT_TYPES if plain_jwt else frozenset())
        self._keys = keys
        self._revocation = revocation
        self._clock = clock
        self._max_token_bytes = max_token_bytes
        self._cache = _VerifiedTokenCache(settings.token_cache_size)
        self._cache_hits = labelled(TOKEN_CACHE, "hit")
        self._cache_misses = labelled(TOKEN_CACHE, "miss")
        self._refresh_lock = asyncio.Lock()
        self._last_forced_refresh: float | None = None

    async def verify(self, token: str) -> Principal:
        if not isinstance(token, str) or not token.isascii() or len(token) > self._max_token_bytes:
            raise InvalidTokenError(_MALFORMED, detail="not ASCII or too large")
        digest = hashlib.sha256(token.encode("ascii")).digest()
        now = self._clock()
        principal = self._cache.get(digest)
        (self._cache_misses if principal is None else self._cache_hits).inc()
        if principal is None:
            principal = await self._verify_jwt(token, now, digest)
            self._cache.put(digest, principal)
        elif principal.expires_at <= now - self._settings.leeway_seconds:
            self._cache.discard(digest)
            raise InvalidTokenError("the access token expired", detail="cached token expired")
        if self._revocation is not None and await self._revocation.is_revoked(principal.token_id):
            raise InvalidTokenError("the access token was revoked", detail=principal.token_id)
        return principal

    async def _verify_jwt(self, token: str, now: float, digest: bytes) -> Principal:
        if _COMPACT_JWS.fullmatch(token) is None:
            raise InvalidTokenError(_MALFORMED, detail="not a compact JWS")
        header_b64, payload_b64, signature_b64 = token.split(".")
        header = _decode_json_object(header_b64, "header")
        algorithm = self._check_header(header)
        key = await self._find_key(header["kid"])
        signing_input = f"{header_b64}.{payload_b64}".encode("ascii")
        signature = _b64url_decode(signature_b64, "signature")
        try:
            algorithm.check_key(key)
            valid = algorithm.verify(signing_input, signature, key)
        except Exception as error:  # wrong key type/curve/use, or a signature the backend refuses
            raise InvalidTokenError(_MALFORMED, detail=f"key or signature: {error}") from error
        if not valid:
            raise InvalidTokenError("the access token signature is invalid", detail="bad signature")
        claims = _decode_json_object(payload_b64, "payload")
        self._check_claims(claims, now)
        if self._plain_jwt:
            return plain_jwt_principal(claims, digest)
        return _principal(claims)

    def _check_header(self, header: dict[str, Any]) -> JWSAlgModel:
        alg = header.get("alg")
        algorithm = self._algorithms.get(alg) if isinstance(alg, str) else None
        if algorithm is None:
            raise InvalidTokenError("the access token algorithm is not accepted", detail=repr(alg))
        typ = header.get("typ")
        if typ is None and self._plain_jwt:
            typ = "jwt"
        if not isinstance(typ, str) or typ.lower() not in self._types:
            raise InvalidTokenError("the token is not an access token (typ)", detail=repr(typ))
        if "crit" in header or "b64" in header:
            raise InvalidTokenError(_MALFORMED, detail="critical header extension")
        kid = header.get("kid")
        if not isinstance(kid, str) or not 0 < len(kid) <= _MAX_KID_LENGTH:
            raise InvalidTokenError(_MALFORMED, detail="kid missing or unusable")
        return algorithm

    async def _find_key(self, kid: str) -> Key:
        key = _key_by_kid(await self._keys.get_jwks(), kid)
        if key is None:
            key = await self._find_key_after_refresh(kid)
        if key is None:
            raise InvalidTokenError("the access token was signed by an unknown key", detail=kid)
        return key

    async def _find_key_after_refresh(self, kid: str) -> Key | None:
        """One forced reload per interval, however many requests miss at once."""
        async with self._refresh_lock:
            key = _key_by_kid(await self._keys.get_jwks(), kid)
            if key is not None:  # a reload finished while this request waited
                return key
            now = self._clock()
            last = self._last_forced_refresh
            if last is not None and now - last < self._settings.jwks_refresh_min_interval:
                return None
            self._last_forced_refresh = now
            return _key_by_kid(await self._keys.get_jwks(force=True), kid)

    def _check_claims(self, claims: dict[str, Any], now: float) -> None:
        settings = self._settings
        leeway = settings.leeway_seconds
        if claims.get("iss") != settings.issuer:
            raise InvalidTokenError("the access token issuer is not trusted", detail="iss")
        audience = _audience(claims.get("aud"))
        if settings.resource_url not in audience:
            raise InvalidTokenError("the access token is not for this resource", detail="aud")
        expires_at = _numeric_date(claims, "exp", required=True)
        if expires_at is None or expires_at <= now - leeway:
            raise InvalidTokenError("the access token expired", detail="exp")
        not_before = _numeric_date(claims, "nbf", required=False)
        if not_before is not None and not_before > now + leeway:
            raise InvalidTokenError("the access token is not valid yet", detail="nbf")
        issued_at = _numeric_date(claims, "iat", required=True)
        if issued_at is None or issued_at > now + leeway:
            raise InvalidTokenError("the access token was issued in the future", detail="iat")


def _principal(claims: dict[str, Any]) -> Principal:
    """The caller an RFC 9068 token names (its time claims were checked)."""
    scope = claims.get("scope", "")
    if not isinstance(scope, str):
        raise InvalidTokenError(_MALFORMED, detail="scope is not a string")
    return Principal(
        subject=_required_string(claims, "sub"),
        client_id=_required_string(claims, "client_id"),
        scopes=frozenset(filter(None, scope.split(" "))),
        token_id=_required_string(claims, "jti"),
        expires_at=int(claims["exp"]),
        audience=_audience(claims.get("aud")),
        username=_display_claim(claims, "preferred_username"),
        name=_display_claim(claims, "name"),
    )


def plain_jwt_principal(claims: dict[str, Any], digest: bytes) -> Principal:
    """The caller a plain JWT (or an introspection answer) names: ``client_id``, ``azp`` or
    ``cid`` (Okta), ``scope`` or ``scp`` (Entra ID, Okta), ``jti`` or the token's digest."""
    client = claims.get("client_id") or claims.get("azp") or claims.get("cid") or ""
    token_id = claims.get("jti") or "sha256:" + digest.hex()
    if not isinstance(client, str) or not isinstance(token_id, str):
        raise InvalidTokenError(_MALFORMED, detail="client_id/azp/jti not a string")
    return Principal(
        subject=_required_string(claims, "sub"),
        client_id=client,
        scopes=scopes_claim(claims),
        token_id=token_id,
        expires_at=int(claims["exp"]),
        audience=_audience(claims.get("aud")),
        username=_display_claim(claims, "preferred_username"),
        name=_display_claim(claims, "name"),
    )


def _display_claim(claims: dict[str, Any], name: str) -> str:
    """A string claim for display (empty when absent or not a string; capped)."""
    value = claims.get(name)
    return value[:256] if isinstance(value, str) else ""


def scopes_claim(claims: dict[str, Any]) -> frozenset[str]:
    """``scope`` (space-separated, RFC 9068 §2.2.3), else ``scp`` (a string or a list)."""
    value = claims.get("scope", claims.get("scp", ""))
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return frozenset(filter(None, value))
    if not isinstance(value, str):
        raise InvalidTokenError(_MALFORMED, detail="scope is not a string")
    return frozenset(filter(None, value.split(" ")))


class _VerifiedTokenCache:
    """Bounded LRU of principals by token digest; expiry is checked by the caller."""

    def __init__(self, max_size: int) -> None:
        self._max_size = max_size
        self._entries: OrderedDict[bytes, Principal] = OrderedDict()

    def get(self, digest: bytes) -> Principal | None:
        principal = self._entries.get(digest)
        if principal is not None:
            self._entries.move_to_end(digest)
        return principal

    def put(self, digest: bytes, principal: Principal) -> None:
        if self._max_size == 0:
            return
        self._entries[digest] = principal
        self._entries.move_to_end(digest)
        while len(self._entries) > self._max_size:
            self._entries.popitem(last=False)

    def discard(self, digest: bytes) -> None:
        self._entries.pop(digest, None)


def _key_by_kid(keys: KeySet, kid: str) -> Key | None:
    return next((key for key in keys if key.kid == kid), None)


def _b64url_decode(segment: str, part: str) -> bytes:
    try:
        return base64.b64decode(segment + "=" * (-len(segment) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError) as error:
        raise InvalidTokenError(_MALFORMED, detail=f"{part}: bad base64url") from error


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate member name")
    return result


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def _decode_json_object(segment: str, part: str) -> dict[str, Any]:
    raw = _b64url_decode(segment, part)
    try:
        value = json.loads(
            raw.decode("utf-8"),
            object_pairs_hook=_reject_duplicates,
            parse_constant=_reject_constant,
        )
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise InvalidTokenError(_MALFORMED, detail=f"{part}: bad JSON") from error
    if not isinstance(value, dict):
        raise InvalidTokenError(_MALFORMED, detail=f"{part}: not a JSON object")
    return value


def _audience(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(value)
    raise InvalidTokenError("the access token is not for this resource", detail="aud malformed")


def _numeric_date(claims: dict[str, Any], name: str, *, required: bool) -> float | None:
    value = claims.get(name)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidTokenError(_MALFORMED, detail=f"{name} missing or not a NumericDate")
    return float(value)


def _required_string(claims: dict[str, Any], name: str) -> str:
    value = claims.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidTokenError(_MALFORMED, detail=f"{name} missing or not a string")
    return value
