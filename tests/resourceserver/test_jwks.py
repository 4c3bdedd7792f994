"""Key sources: static, callback (embedded issuer) and remote ``jwks_uri`` (RFC 7517 §5)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from joserfc.jwk import OctKey

from resourceserver.jwks import (
    CallbackKeySource,
    KeySourceError,
    RemoteJwksSource,
    StaticKeySource,
    keyset_from_jwks,
)
from resourceserver.verifier import JwtTokenVerifier
from tests.support.resource_auth import ISSUER, RESOURCE, FakeClock, make_settings
from tests.support.tokens import jwks_of, make_signing_key, mint_access_token

JWKS_URL = "https://as.example.com/jwks"


def kids(keyset: Any) -> list[str | None]:
    return [key.kid for key in keyset]


def test_keyset_drops_symmetric_private_and_broken_members() -> None:
    good = make_signing_key("good")
    secret = OctKey.generate_key(256, parameters={"kid": "secret"})
    document = {
        "keys": [
            good.as_dict(private=True),
            secret.as_dict(private=True),
            {**make_signing_key("enc").as_dict(private=False), "use": "enc"},
            {"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA", "kid": "broken"},
            {"kty": "PQ", "kid": "future"},
            "not a key",
        ]
    }
    keyset = keyset_from_jwks(document)
    assert kids(keyset) == ["good"]
    assert not next(iter(keyset)).is_private


@pytest.mark.parametrize("document", [{}, {"keys": "x"}, {"keys": {"kid": "a"}}])
def test_keyset_needs_a_keys_array(document: dict[str, Any]) -> None:
    with pytest.raises(KeySourceError):
        keyset_from_jwks(document)


async def test_static_source() -> None:
    source = StaticKeySource(jwks_of(make_signing_key("a")))
    assert kids(await source.get_jwks()) == ["a"]
    assert kids(await source.get_jwks(force=True)) == ["a"]


async def test_callback_source_caches_and_reloads_once_for_many_callers() -> None:
    clock = FakeClock()
    document = jwks_of(make_signing_key("a"))
    loads = 0

    async def fetch() -> dict[str, Any]:
        nonlocal loads
        loads += 1
        await asyncio.sleep(0.01)
        return document

    source = CallbackKeySource(fetch, cache_ttl=60, clock=clock)
    results = await asyncio.gather(*(source.get_jwks() for _ in range(10)))
    assert loads == 1
    assert all(kids(result) == ["a"] for result in results)
    clock.advance(59)
    await source.get_jwks()
    assert loads == 1
    clock.advance(2)
    await source.get_jwks()
    assert loads == 2
    await source.get_jwks(force=True)
    assert loads == 3


async def test_callback_source_keeps_last_good_keys_when_reload_fails() -> None:
    clock = FakeClock()
    failing = False

    async def fetch() -> dict[str, Any]:
        if failing:
            raise RuntimeError("database is down")
        return jwks_of(make_signing_key("a"))

    source = CallbackKeySource(fetch, cache_ttl=1, clock=clock)
    await source.get_jwks()
    failing = True
    clock.advance(5)
    assert kids(await source.get_jwks()) == ["a"]
    assert kids(await source.get_jwks(force=True)) == ["a"]


async def test_callback_source_error_when_never_loaded() -> None:
    async def fetch() -> dict[str, Any]:
        raise RuntimeError("database is down")

    with pytest.raises(KeySourceError):
        await CallbackKeySource(fetch).get_jwks()


def remote(handler: Any, **kwargs: Any) -> tuple[RemoteJwksSource, httpx.AsyncClient]:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return RemoteJwksSource(JWKS_URL, client=client, **kwargs), client


async def test_remote_source_fetches_and_caches() -> None:
    requests: list[httpx.Request] = []
    document = jwks_of(make_signing_key("r1"))

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(200, json=document)

    source, client = remote(handler)
    async with client:
        assert kids(await source.get_jwks()) == ["r1"]
        assert kids(await source.get_jwks()) == ["r1"]
    assert len(requests) == 1
    assert str(requests[0].url) == JWKS_URL


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(302, headers={"Location": "http://169.254.169.254/latest"}),
        httpx.Response(500, text="oops"),
        httpx.Response(200, text="not json"),
        httpx.Response(200, json=["a", "list"]),
        httpx.Response(200, content=json.dumps({"keys": [], "pad": "x" * 70_000}).encode()),
    ],
    ids=["redirect", "500", "not-json", "not-object", "oversized"],
)
async def test_remote_source_refuses_bad_answers(response: httpx.Response) -> None:
    hits = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal hits
        hits += 1
        return response

    source, client = remote(handler)
    async with client:
        with pytest.raises(KeySourceError):
            await source.get_jwks()
    assert hits == 1  # a redirect is not followed


async def test_remote_source_times_out() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200, json={"keys": []})

    source, client = remote(handler, timeout=0.05)
    async with client:
        with pytest.raises(KeySourceError):
            await source.get_jwks()


async def test_remote_source_serves_stale_keys_during_outage() -> None:
    clock = FakeClock()
    up = True

    def handler(request: httpx.Request) -> httpx.Response:
        if not up:
            return httpx.Response(503)
        return httpx.Response(200, json=jwks_of(make_signing_key("r1")))

    source, client = remote(handler, cache_ttl=10, clock=clock)
    async with client:
        await source.get_jwks()
        up = False
        clock.advance(60)
        assert kids(await source.get_jwks()) == ["r1"]


async def test_remote_source_owns_its_default_client() -> None:
    source = RemoteJwksSource(JWKS_URL)
    await source.aclose()


async def test_verifier_over_remote_source_end_to_end() -> None:
    key = make_signing_key("r1")

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=jwks_of(key))

    source, client = remote(handler)
    async with client:
        verifier = JwtTokenVerifier(make_settings(), source)
        token = mint_access_token(key, issuer=ISSUER, audience=RESOURCE)
        assert (await verifier.verify(token)).subject == "alice"
