"""Test helpers: ES256 signing keys, their JWKS, and RFC 9068 access tokens with any header/claims.

Typical use::

    key = make_signing_key("k1")
    source = StaticKeySource(jwks_of(key))
    token = mint_access_token(key, issuer=ISSUER, audience=RESOURCE)
    bad = mint_access_token(key, issuer=ISSUER, audience=RESOURCE,
                            header_overrides={"typ": None}, claim_overrides={"exp": 0})

``None`` in ``header_overrides``/``claim_overrides`` removes that member. Signing is done here
(not by joserfc's serializer) so that headers joserfc would refuse (``crit``, ``jku``...) can be
put in a validly signed token. :func:`compact` builds an arbitrary, unsigned token string.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

from joserfc.jwk import ECKey, Key, KeySet
from joserfc.jws import JWSRegistry

__all__ = ["b64url", "compact", "jwks_of", "make_signing_key", "mint_access_token"]


def b64url(data: bytes | str) -> str:
    """Unpadded base64url of ``data`` (a str is UTF-8 encoded)."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def compact(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    """``b64(header).b64(claims).b64(signature)`` without signing anything."""
    return ".".join((b64url(json.dumps(header)), b64url(json.dumps(claims)), b64url(signature)))


def make_signing_key(kid: str = "test-key-1", curve: str = "P-256") -> Key:
    """A fresh private EC key (P-256 → ES256) with ``kid``."""
    return ECKey.generate_key(curve, parameters={"kid": kid, "use": "sig"})


def jwks_of(*keys: Key) -> dict[str, Any]:
    """The public JWKS document (``{"keys": [...]}``) of ``keys``."""
    return dict(KeySet(list(keys)).as_dict(private=False))


def mint_access_token(
    key: Key,
    *,
    issuer: str,
    audience: str | list[str],
    subject: str = "alice",
    client_id: str = "client-1",
    scope: str = "mcp",
    lifetime: int = 300,
    now: float | None = None,
    alg: str = "ES256",
    header_overrides: dict[str, Any] | None = None,
    claim_overrides: dict[str, Any] | None = None,
) -> str:
    """A signed JWT access token (``typ`` ``at+jwt``) as the authorization server would issue it.

    ``now`` defaults to the wall clock; ``alg`` picks the JWS algorithm the key signs with.
    """
    issued_at = int(time.time() if now is None else now)
    header: dict[str, Any] = {"alg": alg, "typ": "at+jwt", "kid": key.kid}
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": audience,
        "sub": subject,
        "client_id": client_id,
        "scope": scope,
        "iat": issued_at,
        "nbf": issued_at,
        "exp": issued_at + lifetime,
        "jti": uuid.uuid4().hex,
    }
    _apply(header, header_overrides)
    _apply(claims, claim_overrides)
    signing_input = f"{b64url(json.dumps(header))}.{b64url(json.dumps(claims))}"
    algorithm = JWSRegistry(algorithms=[alg]).get_alg(alg)
    signature = algorithm.sign(signing_input.encode("ascii"), key)
    return f"{signing_input}.{b64url(signature)}"


def _apply(target: dict[str, Any], overrides: dict[str, Any] | None) -> None:
    for name, value in (overrides or {}).items():
        if value is None:
            target.pop(name, None)
        else:
            target[name] = value
