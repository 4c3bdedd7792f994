"""Access tokens signed by :class:`AccessTokenSigner` (RFC 7515 §7.1, RFC 7518 §3.4,
RFC 9068 §2.1): joserfc verifies them, with the RFC 9068 header and the claims as given."""

from __future__ import annotations

import json

import pytest
from joserfc import jwt
from joserfc.errors import BadSignatureError
from joserfc.jwk import ECKey
from joserfc.util import urlsafe_b64decode

from authserver.oauth.jwt_signer import AccessTokenSigner
from authserver.oauth.tokens import signer_for

CLAIMS = {"iss": "https://as.example", "sub": "u1", "name": "Zoë ✓", "exp": 2_000_000_000}


def _key() -> ECKey:
    return ECKey.generate_key("P-256", auto_kid=True)


def test_joserfc_verifies_the_token_with_the_rfc9068_header() -> None:
    key = _key()
    token = AccessTokenSigner(key, "at+jwt").sign(dict(CLAIMS))
    decoded = jwt.decode(token, key, algorithms=["ES256"])
    assert decoded.header == {"typ": "at+jwt", "alg": "ES256", "kid": key.kid}
    assert decoded.claims == CLAIMS
    header = json.loads(urlsafe_b64decode(token.split(".")[0].encode()))
    assert list(header) == ["typ", "alg", "kid"]


def test_another_key_does_not_verify_it() -> None:
    token = AccessTokenSigner(_key(), "at+jwt").sign(dict(CLAIMS))
    with pytest.raises(BadSignatureError):
        jwt.decode(token, _key(), algorithms=["ES256"])


def test_only_p256_keys_sign() -> None:
    with pytest.raises(ValueError, match="ES256"):
        AccessTokenSigner(ECKey.generate_key("P-384"), "at+jwt")


def test_a_public_key_cannot_sign() -> None:
    public = ECKey.import_key(_key().as_dict(private=False))
    with pytest.raises(Exception):  # noqa: B017 - joserfc's or ours, either refuses
        AccessTokenSigner(public, "at+jwt")


def test_the_signer_follows_the_key_object() -> None:
    first, second = _key(), _key()
    assert signer_for(first) is signer_for(first)
    assert signer_for(second).key is second
    token = signer_for(first).sign(dict(CLAIMS))
    assert jwt.decode(token, first, algorithms=["ES256"]).claims == CLAIMS
