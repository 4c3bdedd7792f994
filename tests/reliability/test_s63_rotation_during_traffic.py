"""S63: signing-key rotation during traffic — the new key is in the JWKS before it signs, and
the old key stays published for the longest token lifetime, so every token issued around the
rotation verifies at the resource server (RFC 7517 §5; RFC 9068 §4).
"""

from __future__ import annotations

import base64
import json
import threading
from pathlib import Path

import httpx

from authserver.endpoints.app import create_app
from authserver.storage.schema import prepare_database
from resourceserver.jwks import RemoteJwksSource, StaticKeySource
from resourceserver.settings import ResourceServerSettings
from resourceserver.verifier import JwtTokenVerifier
from tests.support.clock import Clock
from tests.support.factories import create_client
from tests.support.live import serve_app
from tests.support.reliability import ISSUER, RESOURCE, build_worker, client_credentials_form

PUBLISH_AHEAD = 120
#: Past the key store's own few-second cache.
CACHE_SECONDS = 6
TRAFFIC_TOKENS = 24


def kid_of(token: str) -> str:
    """The ``kid`` of a compact JWS, without verifying it."""
    header = token.split(".")[0]
    decoded = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    return str(decoded["kid"])


def published_kids(jwks: dict[str, list[dict[str, str]]]) -> set[str]:
    return {key["kid"] for key in jwks["keys"]}


async def test_s63_rotation_during_traffic(fresh_database_url: str, tmp_path: Path) -> None:
    clock = Clock(1_900_000_000.0)
    server = build_worker(
        fresh_database_url, tmp_path, clock=clock, key_publish_ahead_seconds=PUBLISH_AHEAD
    )
    prepare_database(server.database.engine)
    server.keys.ensure_signing_key()
    old_kid = server.keys.signing_key().kid
    assert old_kid is not None
    client, secret = create_client(
        server,
        confidential=True,
        auth_method="client_secret_post",
        grant_types=["client_credentials"],
    )
    assert secret is not None
    form = client_credentials_form(client.client_id, secret)
    tokens: list[str] = []
    statuses: list[int] = []
    halfway = threading.Event()

    def traffic(url: str) -> None:
        with httpx.Client(timeout=30) as http:
            for index in range(TRAFFIC_TOKENS):
                if index == TRAFFIC_TOKENS // 2:
                    halfway.set()
                response = http.post(f"{url}/token", data=form)
                statuses.append(response.status_code)
                if response.status_code == 200:
                    tokens.append(response.json()["access_token"])
        halfway.set()

    try:
        with serve_app(create_app(server)) as url:
            worker = threading.Thread(target=traffic, args=(url,))
            worker.start()
            halfway.wait(timeout=60)
            new_row = server.keys.rotate()
            # Published at once, signing only after PUBLISH_AHEAD.
            async with httpx.AsyncClient() as http:
                before_activation = (await http.get(f"{url}/jwks.json")).json()
            assert published_kids(before_activation) == {old_kid, new_row.kid}
            assert server.keys.signing_key().kid == old_kid
            clock.advance(PUBLISH_AHEAD + CACHE_SECONDS)
            worker.join(timeout=120)
            assert server.keys.signing_key().kid == new_row.kid
            async with httpx.AsyncClient() as http:
                after = (await http.get(f"{url}/jwks.json")).json()
                late = await http.post(f"{url}/token", data=form)
            assert late.status_code == 200
            tokens.append(late.json()["access_token"])
            settings = ResourceServerSettings(resource_url=RESOURCE, issuer=ISSUER)
            remote = RemoteJwksSource(f"{url}/jwks.json", clock=clock)
            at_rs = JwtTokenVerifier(settings, remote, clock=clock)
            # A resource server that fetched the JWKS before activation, and never again.
            snapshot = JwtTokenVerifier(settings, StaticKeySource(before_activation), clock=clock)
            for token in tokens:
                assert (await at_rs.verify(token)).client_id == client.client_id
                assert (await snapshot.verify(token)).client_id == client.client_id
            await remote.aclose()
    finally:
        server.database.dispose()
    assert statuses == [200] * TRAFFIC_TOKENS
    assert kid_of(tokens[0]) == old_kid
    assert kid_of(tokens[-1]) == new_row.kid
    assert published_kids(after) == {old_kid, new_row.kid}


def test_s63_old_key_kept_for_the_longest_token_lifetime(
    fresh_database_url: str, tmp_path: Path
) -> None:
    clock = Clock(1_900_000_000.0)
    server = build_worker(
        fresh_database_url, tmp_path, clock=clock, key_publish_ahead_seconds=PUBLISH_AHEAD
    )
    try:
        prepare_database(server.database.engine)
        server.keys.ensure_signing_key()
        old_kid = server.keys.signing_key().kid
        rotated_at = clock.now
        new_kid = server.keys.rotate().kid
        lifetime = server.settings.access_token_ttl + server.settings.leeway_seconds
        retire_at = rotated_at + PUBLISH_AHEAD
        # The last token the old key signs (just before activation) lives until retire + ttl.
        for moment, expected in [
            (retire_at - 1, {old_kid, new_kid}),
            (retire_at + lifetime - 1, {old_kid, new_kid}),
            (retire_at + lifetime + 1, {new_kid}),
        ]:
            clock.now = moment
            server.keys.invalidate_cache()
            assert published_kids(server.keys.jwks()) == expected, moment
    finally:
        server.database.dispose()


def test_s63_default_rotation_publishes_before_signing(tmp_path: Path) -> None:
    clock = Clock(1_900_000_000.0)
    url = f"sqlite:///{tmp_path / 'charter.db'}"
    worker = build_worker(url, tmp_path, clock=clock)  # default settings
    operator = build_worker(url, tmp_path, clock=clock)  # e.g. the `charter keys rotate` process
    try:
        prepare_database(worker.database.engine)
        worker.keys.ensure_signing_key()
        worker.keys.signing_key()  # the worker's signing-key cache starts now
        clock.advance(3)
        worker.keys.jwks()  # its JWKS cache starts a little later
        clock.advance(1)
        operator.keys.rotate()
        clock.advance(2)  # past the signing-key cache, inside the JWKS cache
        signing_kid = worker.keys.signing_key().kid
        assert signing_kid in published_kids(worker.keys.jwks())
    finally:
        worker.database.dispose()
        operator.database.dispose()
