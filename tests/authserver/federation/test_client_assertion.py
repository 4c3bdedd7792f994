"""``private_key_jwt`` (RFC 7523 §3): each assertion names our client id as ``iss`` and
``sub``, the token endpoint as ``aud``, a fresh ``jti`` and a one-minute lifetime, and verifies
with the public key Charter prints for the provider."""

from __future__ import annotations

from joserfc import jwt
from joserfc.jwk import RSAKey

from authserver.context import AuthServer
from authserver.federation.client_assertion import client_assertion, new_client_key, public_jwk


def test_assertions_verify_with_the_printed_key_and_name_the_token_endpoint(
    auth_server: AuthServer,
) -> None:
    encrypted, public = new_client_key(auth_server.keys)
    assert public == public_jwk(encrypted, auth_server.keys) and "d" not in public
    made = [
        client_assertion(
            encrypted,
            auth_server.keys,
            client_id="charter",
            token_endpoint="https://idp.example/token",
            now=1000,
        )
        for _ in range(2)
    ]
    claims = [
        jwt.decode(token, RSAKey.import_key(public), algorithms=["RS256"]).claims for token in made
    ]
    assert claims[0]["iss"] == claims[0]["sub"] == "charter"
    assert claims[0]["aud"] == "https://idp.example/token"
    assert (claims[0]["iat"], claims[0]["exp"]) == (1000, 1060)
    assert claims[0]["jti"] != claims[1]["jti"]
