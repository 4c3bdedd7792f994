"""S62: clock skew between the authorization server and the resource server — time claims
(``iat``, ``nbf``, ``exp``; RFC 7519 §4.1.4-§4.1.6, RFC 9068 §4) are accepted inside the
leeway and rejected beyond it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from authserver.context import AuthServer
from authserver.endpoints.app import create_app
from authserver.storage.schema import prepare_database
from resourceserver.errors import InvalidTokenError
from resourceserver.jwks import StaticKeySource
from resourceserver.settings import ResourceServerSettings
from resourceserver.verifier import JwtTokenVerifier
from tests.support.clock import Clock
from tests.support.factories import create_client
from tests.support.reliability import ISSUER, RESOURCE, build_worker, client_credentials_form
from tests.support.tokens import jwks_of, make_signing_key, mint_access_token

LEEWAY = 30
RS_NOW = 1_900_000_000


def rs_verifier(source: StaticKeySource, now: float) -> JwtTokenVerifier:
    """A resource-server verifier whose clock reads ``now``."""
    settings = ResourceServerSettings(resource_url=RESOURCE, issuer=ISSUER, leeway_seconds=LEEWAY)
    return JwtTokenVerifier(settings, source, clock=lambda: now)


@pytest.mark.parametrize(
    ("claims", "accepted"),
    [
        ({"iat": RS_NOW + LEEWAY, "nbf": RS_NOW + LEEWAY}, True),
        ({"iat": RS_NOW + LEEWAY + 1, "nbf": RS_NOW}, False),
        ({"iat": RS_NOW, "nbf": RS_NOW + LEEWAY + 1}, False),
        ({"iat": RS_NOW - 600, "nbf": RS_NOW - 600, "exp": RS_NOW - LEEWAY + 1}, True),
        ({"iat": RS_NOW - 600, "nbf": RS_NOW - 600, "exp": RS_NOW - LEEWAY}, False),
        ({"iat": RS_NOW - 600, "nbf": RS_NOW - 600, "exp": RS_NOW - LEEWAY - 120}, False),
    ],
    ids=[
        "future-iat-nbf-at-leeway",
        "future-iat-beyond-leeway",
        "future-nbf-beyond-leeway",
        "expired-inside-leeway",
        "expired-at-leeway",
        "expired-beyond-leeway",
    ],
)
async def test_s62_time_claims_within_leeway(claims: dict[str, int], accepted: bool) -> None:
    key = make_signing_key("skew")
    verifier = rs_verifier(StaticKeySource(jwks_of(key)), RS_NOW)
    token = mint_access_token(
        key,
        issuer=ISSUER,
        audience=RESOURCE,
        now=RS_NOW,
        lifetime=300,
        claim_overrides=dict(claims),
    )
    if accepted:
        assert (await verifier.verify(token)).subject == "alice"
    else:
        with pytest.raises(InvalidTokenError):
            await verifier.verify(token)


@dataclass
class SkewedIssuer:
    """An authorization server on a settable clock, with a confidential client."""

    server: AuthServer
    clock: Clock
    form: dict[str, str]


@pytest.fixture(scope="module")
def skewed_issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SkewedIssuer]:
    folder = tmp_path_factory.mktemp("s62")
    clock = Clock(RS_NOW - 7200)  # the key must exist before every skewed "now"
    server = build_worker(f"sqlite:///{folder / 'charter.db'}", folder, clock=clock)
    prepare_database(server.database.engine)
    server.keys.ensure_signing_key()
    client, secret = create_client(
        server,
        confidential=True,
        auth_method="client_secret_post",
        grant_types=["client_credentials"],
    )
    assert secret is not None
    yield SkewedIssuer(server, clock, client_credentials_form(client.client_id, secret))
    server.database.dispose()


@pytest.mark.parametrize(
    ("skew", "accepted"),
    [
        (0, True),
        (LEEWAY - 1, True),
        (-(LEEWAY - 1), True),
        (LEEWAY + 5, False),
        (-(3600 + LEEWAY + 5), False),
    ],
    ids=[
        "in-sync",
        "issuer-ahead-inside",
        "issuer-behind-inside",
        "issuer-ahead-beyond",
        "issuer-behind-beyond-lifetime",
    ],
)
async def test_s62_issuer_clock_skew_end_to_end(
    skew: int, accepted: bool, skewed_issuer: SkewedIssuer
) -> None:
    """A token issued by an authorization server whose clock is off by ``skew`` seconds."""
    server = skewed_issuer.server
    assert server.settings.access_token_ttl == 3600
    skewed_issuer.clock.now = RS_NOW + skew
    transport = httpx.ASGITransport(app=create_app(server))
    async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as http:
        response = await http.post("/token", data=skewed_issuer.form)
    assert response.status_code == 200, response.text
    verifier = rs_verifier(StaticKeySource(server.keys.jwks()), RS_NOW)
    token = response.json()["access_token"]
    if accepted:
        assert (await verifier.verify(token)).client_id == skewed_issuer.form["client_id"]
    else:
        with pytest.raises(InvalidTokenError, match=r"future|not valid yet|expired"):
            await verifier.verify(token)
