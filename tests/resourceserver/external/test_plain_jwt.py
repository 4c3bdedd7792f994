"""JWT access tokens of an external issuer (resource-server-only mode): RFC 9068 tokens and
plain JWTs (``typ`` ``JWT`` or none) are accepted when the claims are right; the audience is
what keeps ID tokens and tokens for other resources out (S80)."""

from __future__ import annotations

from typing import Any

import pytest
from joserfc.jwk import Key

from resourceserver.errors import InvalidTokenError
from resourceserver.verifier import JwtTokenVerifier
from tests.support.resource_auth import (
    ISSUER,
    RESOURCE,
    START,
    CountingKeySource,
    FakeClock,
    make_settings,
)
from tests.support.tokens import jwks_of, make_signing_key, mint_access_token


@pytest.fixture
def key() -> Key:
    return make_signing_key("k1")


def external(key: Key, *, plain_jwt: bool = True) -> JwtTokenVerifier:
    keys = CountingKeySource(jwks_of(key))
    return JwtTokenVerifier(make_settings(), keys, clock=FakeClock(), plain_jwt=plain_jwt)


def mint(key: Key, header: dict[str, Any] | None = None, **claims: Any) -> str:
    return mint_access_token(
        key,
        issuer=ISSUER,
        audience=claims.pop("aud", RESOURCE),
        now=START,
        header_overrides=header,
        claim_overrides=claims,
    )


@pytest.mark.parametrize("typ", [None, "JWT", "at+jwt", "application/at+jwt"])
async def test_plain_and_rfc9068_tokens_are_accepted(key: Key, typ: str | None) -> None:
    token = mint(key, {"typ": typ} if typ else {"typ": None})
    principal = await external(key).verify(token)
    assert principal.subject == "alice" and principal.client_id == "client-1"


async def test_entra_and_okta_shapes_name_client_and_scopes(key: Key) -> None:
    entra = mint(key, {"typ": "JWT"}, client_id=None, azp="app-1", scope=None, scp="mcp notes:read")
    okta = mint(key, client_id=None, cid="app-2", scope=None, scp=["mcp"], jti=None)
    first, second = await external(key).verify(entra), await external(key).verify(okta)
    assert (first.client_id, first.scopes) == ("app-1", {"mcp", "notes:read"})
    assert (second.client_id, second.scopes) == ("app-2", {"mcp"})
    assert second.token_id.startswith("sha256:")


async def test_the_embedded_profile_still_requires_at_jwt(key: Key) -> None:
    with pytest.raises(InvalidTokenError):
        await external(key, plain_jwt=False).verify(mint(key, {"typ": "JWT"}))


@pytest.mark.parametrize(
    "claims",
    [
        {"aud": "client-1"},  # an ID token: its audience is the client
        {"aud": "https://other.example/mcp"},
        {"iss": "https://evil.example"},
        {"sub": None},
        {"exp": START - 3600},
    ],
    ids=["id-token-aud", "other-aud", "foreign-iss", "no-sub", "expired"],
)
async def test_s80_plain_jwts_for_others_or_from_others_are_refused(
    key: Key, claims: dict[str, Any]
) -> None:
    with pytest.raises(InvalidTokenError):
        await external(key).verify(mint(key, {"typ": "JWT"}, **claims))


async def test_s80_another_typ_is_refused(key: Key) -> None:
    with pytest.raises(InvalidTokenError):
        await external(key).verify(mint(key, {"typ": "dpop+jwt"}))
