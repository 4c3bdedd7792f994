"""``private_key_jwt`` client authentication at an upstream token endpoint (RFC 7523 §2.2 and
§3; OpenID Connect Core 1.0 §9).

Charter holds one RSA key per provider (RS256 is what every provider accepts), made by
``charter idps add --auth-method private_key_jwt`` and stored encrypted under the deployment's
key-encryption key; its public JWK is registered at the provider. Each token request carries a
fresh assertion: ``iss`` = ``sub`` = our client id, ``aud`` = the token endpoint, a random
``jti``, ``iat`` and an ``exp`` one minute later.
"""

from __future__ import annotations

import json
from typing import Any

from joserfc import jwt
from joserfc.jwk import RSAKey

from authserver.storage.crypto import new_id
from authserver.storage.signing_keys import KeyStore

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ALGORITHM = "RS256"
LIFETIME = 60


def new_client_key(keys: KeyStore) -> tuple[str, dict[str, Any]]:
    """A new RSA key: encrypted for the database, and its public JWK for the provider."""
    key = RSAKey.generate_key(2048, auto_kid=True)
    public = {**key.as_dict(private=False), "use": "sig", "alg": ALGORITHM}
    return keys.encrypt_secret(json.dumps(key.as_dict(private=True))), public


def public_jwk(encrypted: str, keys: KeyStore) -> dict[str, Any]:
    """The public JWK of a stored key (to show the operator again)."""
    key = RSAKey.import_key(json.loads(keys.decrypt_secret(encrypted)))
    return {**key.as_dict(private=False), "use": "sig", "alg": ALGORITHM}


def client_assertion(
    encrypted: str, keys: KeyStore, *, client_id: str, token_endpoint: str, now: int
) -> str:
    """A signed client assertion for one token request."""
    key = RSAKey.import_key(json.loads(keys.decrypt_secret(encrypted)))
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": token_endpoint,
        "jti": new_id(),
        "iat": now,
        "exp": now + LIFETIME,
    }
    header = {"alg": ALGORITHM, "typ": "JWT", "kid": key.kid}
    return jwt.encode(header, claims, key, algorithms=[ALGORITHM])
