"""Validation of an upstream ID token (OpenID Connect Core 1.0 §3.1.3.7; RFC 8725 §3.1; S76).

In order: the JWS header names an allowed asymmetric algorithm (never ``none``, never an HMAC
one: a provider's public key must not become an HMAC secret); the signature verifies with a key
of the provider's JWKS (the set is fetched again for an unknown ``kid``, see
:class:`authserver.federation.discovery.UpstreamDirectory`); ``iss`` equals the provider's
issuer exactly; ``aud`` contains our client id, and ``azp`` (required when there are several
audiences) equals it; ``exp`` is in the future and ``iat`` not in the future, both within the
leeway, and ``iat`` not older than :data:`MAX_AGE`; ``nonce`` is the one sent with this
sign-in (compared by hash); ``sub`` is a non-empty string of at most 255 characters.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jws import extract_compact

from authserver.storage.crypto import token_matches

#: JWS algorithms accepted on ID tokens (asymmetric only).
ALLOWED_ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)
#: An ID token issued longer ago than this is refused even when unexpired, seconds.
MAX_AGE = 600
MAX_LENGTH = 16384


class IdTokenError(Exception):
    """The ID token is not acceptable; the message says why (shown on the error page)."""


def _header(token: str) -> dict[str, Any]:
    if len(token) > MAX_LENGTH or token.count(".") != 2:
        raise IdTokenError("the ID token is not a signed JWT")
    try:
        return dict(extract_compact(token.encode()).headers())
    except (JoseError, ValueError, TypeError, UnicodeDecodeError) as error:
        raise IdTokenError("the ID token is not a signed JWT") from error


def _signed_claims(token: str, keys: Callable[[str | None], KeySet]) -> dict[str, Any]:
    header = _header(token)
    alg = header.get("alg")
    if alg not in ALLOWED_ALGORITHMS:
        raise IdTokenError(f"the ID token's algorithm {alg!r} is not accepted")
    kid = header.get("kid")
    key_set = keys(kid if isinstance(kid, str) else None)
    try:
        decoded = jwt.decode(token, key_set, algorithms=[str(alg)])
    except (JoseError, ValueError, TypeError, KeyError) as error:
        raise IdTokenError("the ID token's signature does not verify") from error
    return dict(decoded.claims)


def _check_audience(claims: dict[str, Any], client_id: str) -> None:
    audience = claims.get("aud")
    audiences = [audience] if isinstance(audience, str) else audience
    if not isinstance(audiences, list) or client_id not in audiences:
        raise IdTokenError("the ID token was issued for another application (aud)")
    azp = claims.get("azp")
    if len(audiences) > 1 and azp is None:
        raise IdTokenError("the ID token has several audiences but no azp")
    if azp is not None and azp != client_id:
        raise IdTokenError("the ID token was issued for another application (azp)")


def _number(claims: dict[str, Any], name: str) -> int:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise IdTokenError(f"the ID token has no {name}")
    return int(value)


def _check_times(claims: dict[str, Any], now: int, leeway: int) -> None:
    if _number(claims, "exp") <= now - leeway:
        raise IdTokenError("the ID token has expired")
    issued_at = _number(claims, "iat")
    if issued_at > now + leeway:
        raise IdTokenError("the ID token was issued in the future")
    if issued_at < now - MAX_AGE - leeway:
        raise IdTokenError("the ID token was issued too long ago")


def verify_id_token(
    token: str,
    *,
    keys: Callable[[str | None], KeySet],
    issuer: str,
    client_id: str,
    nonce_hash: str,
    now: int,
    leeway: int,
) -> dict[str, Any]:
    """The claims of ``token`` when every check passes, else :class:`IdTokenError`."""
    claims = _signed_claims(token, keys)
    if claims.get("iss") != issuer:
        raise IdTokenError("the ID token was issued by another provider (iss)")
    _check_audience(claims, client_id)
    _check_times(claims, now, leeway)
    nonce = claims.get("nonce")
    if not isinstance(nonce, str) or not token_matches(nonce, nonce_hash):
        raise IdTokenError("the ID token's nonce does not belong to this sign-in")
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject or len(subject) > 255:
        raise IdTokenError("the ID token has no usable sub")
    return claims
