"""BearerAuthMiddleware and challenge_response over HTTP (RFC 6750 §2-3, RFC 9728 §5.1; S32-S41)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from joserfc.jwk import Key
from starlette.applications import Starlette

from resourceserver.auth import BearerAuthMiddleware, bearer_token, challenge_response
from resourceserver.errors import InsufficientScopeError, InvalidTokenError
from resourceserver.jwks import KeySource, KeySourceError
from resourceserver.verifier import JwtTokenVerifier
from tests.support.live import serve_app
from tests.support.resource_auth import (
    ISSUER,
    PRM_URL,
    RESOURCE,
    CountingKeySource,
    FakeClock,
    bearer,
    body,
    build_app,
    challenge_params,
    client_for,
    make_settings,
    make_verifier,
)
from tests.support.tokens import (
    b64url,
    compact,
    jwks_of,
    make_signing_key,
    mint_access_token,
)


@pytest.fixture
def key() -> Key:
    return make_signing_key("k1")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def app(key: Key, clock: FakeClock) -> Starlette:
    settings = make_settings()
    return build_app(settings, make_verifier(settings, CountingKeySource(jwks_of(key)), clock))


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app) as client:
        yield client


def mint(key: Key, clock: FakeClock, **kwargs: Any) -> str:
    kwargs.setdefault("issuer", ISSUER)
    kwargs.setdefault("audience", RESOURCE)
    return mint_access_token(key, now=clock.now, **kwargs)


def assert_invalid_token(response: httpx.Response) -> None:
    assert response.status_code == 401
    params = challenge_params(response)
    assert params["error"] == "invalid_token"
    assert params["resource_metadata"] == PRM_URL
    assert params["scope"] == "mcp"
    assert body(response)["error"] == "invalid_token"


async def test_valid_token_reaches_the_app_with_its_principal(
    client: httpx.AsyncClient, key: Key, clock: FakeClock
) -> None:
    token = mint(key, clock, subject="bob", scope="mcp notes:read")
    response = await client.post("/mcp", headers=bearer(token))
    assert response.status_code == 200
    assert body(response)["subject"] == "bob"
    assert body(response)["scopes"] == ["mcp", "notes:read"]


async def test_s32_other_audience_is_401_invalid_token(
    client: httpx.AsyncClient, key: Key, clock: FakeClock
) -> None:
    token = mint(key, clock, audience="https://other.example.com/mcp")
    response = await client.post("/mcp", headers=bearer(token))
    assert_invalid_token(response)
    assert "resource" in challenge_params(response)["error_description"]


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
async def test_s33_alg_none_is_401(
    client: httpx.AsyncClient, key: Key, clock: FakeClock, alg: str
) -> None:
    valid = mint(key, clock)
    header = b64url(f'{{"alg": "{alg}", "typ": "at+jwt", "kid": "k1"}}')
    for token in (f"{header}.{valid.split('.')[1]}.", f"{header}.{valid.split('.')[1]}.AA"):
        assert_invalid_token(await client.post("/mcp", headers=bearer(token)))


async def test_s35_kid_injection_is_401_not_500(
    client: httpx.AsyncClient, key: Key, clock: FakeClock
) -> None:
    for kid in ("' OR 1=1 --", "../../etc/passwd", "k" * 10_240, "ключ", "a\x00b"):
        token = mint(key, clock, header_overrides={"kid": kid})
        assert_invalid_token(await client.post("/mcp", headers=bearer(token)))


async def test_s38_opaque_code_and_id_tokens_are_401(
    client: httpx.AsyncClient, key: Key, clock: FakeClock
) -> None:
    id_token = mint(key, clock, audience="client-1", header_overrides={"typ": "JWT"})
    for token in (secrets.token_urlsafe(32), "SplxlOBeZQQYbYS6WxSbIA", id_token):
        assert_invalid_token(await client.get("/mcp", headers=bearer(token)))


async def test_s40_malformed_tokens_are_401_never_500(
    client: httpx.AsyncClient, key: Key, clock: FakeClock
) -> None:
    valid = mint(key, clock)
    header, payload, signature = valid.split(".")
    tokens: list[str | bytes] = [
        f"{header}.{payload}.{signature[:-2]}xx",
        f"{header}.{b64url('{}')}.{signature}",
        ".".join([header, "AAAA", "BBBB", "CCCC", "DDDD"]),
        mint(key, clock, header_overrides={"crit": ["urn:example:unknown"]}),
        mint(key, clock, claim_overrides={"pad": "x" * 100_000}),
        compact({"alg": "ES256", "typ": "at+jwt", "kid": "k1"}, {"sub": "x"}, b"sig"),
        b"\xff\xfe\xfd.\x80\x81.\xc3\x28",
        "a" * 20_000,
    ]
    for token in tokens:
        raw = token if isinstance(token, bytes) else token.encode("ascii")
        response = await client.post("/mcp", headers={b"Authorization": b"Bearer " + raw})
        assert_invalid_token(response)


async def test_s41_no_token_is_401_with_resource_metadata_and_scope_no_error(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == (
        f'Bearer resource_metadata="{PRM_URL}", scope="mcp"'
    )
    assert "error" not in challenge_params(response)
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-type"].startswith("application/json")


async def test_s41_token_in_query_string_is_ignored(
    client: httpx.AsyncClient, key: Key, clock: FakeClock
) -> None:
    token = mint(key, clock)
    response = await client.get("/mcp", params={"access_token": token})
    assert response.status_code == 401
    assert "error" not in challenge_params(response)
    form = await client.post("/mcp", data={"access_token": token})
    assert form.status_code == 401


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
async def test_s41_bearer_scheme_is_case_insensitive(
    client: httpx.AsyncClient, key: Key, clock: FakeClock, scheme: str
) -> None:
    response = await client.get("/mcp", headers={"Authorization": f"{scheme} {mint(key, clock)}"})
    assert response.status_code == 200


@pytest.mark.parametrize("value", ["Basic YWxpY2U6c2VjcmV0", "Token abc", "Negotiate"])
async def test_s41_other_schemes_count_as_no_token(client: httpx.AsyncClient, value: str) -> None:
    response = await client.get("/mcp", headers={"Authorization": value})
    assert response.status_code == 401
    assert "error" not in challenge_params(response)


@pytest.mark.parametrize("value", ["Bearer", "Bearer ", "Bearer a b", "Bearer a,b", "Bearer é"])
async def test_s41_malformed_bearer_header_is_invalid_token(
    client: httpx.AsyncClient, value: str
) -> None:
    response = await client.get("/mcp", headers={b"Authorization": value.encode("utf-8")})
    assert_invalid_token(response)


async def test_s41_two_authorization_headers_rejected(
    client: httpx.AsyncClient, key: Key, clock: FakeClock
) -> None:
    token = mint(key, clock)
    headers = [("Authorization", f"Bearer {token}"), ("Authorization", f"Bearer {token}")]
    assert_invalid_token(await client.get("/mcp", headers=headers))


async def test_s41_insufficient_scope_is_403_with_scope(
    client: httpx.AsyncClient, key: Key, clock: FakeClock
) -> None:
    token = mint(key, clock, scope="mcp notes:read")
    response = await client.get("/mcp", params={"need": "notes:write"}, headers=bearer(token))
    assert response.status_code == 403
    params = challenge_params(response)
    assert params["error"] == "insufficient_scope"
    assert params["scope"] == "mcp notes:write"
    assert params["resource_metadata"] == PRM_URL
    assert body(response)["error"] == "insufficient_scope"
    ok = await client.get("/mcp", params={"need": "notes:read"}, headers=bearer(token))
    assert ok.status_code == 200


def test_challenge_response_shapes() -> None:
    settings = make_settings()
    missing = challenge_response(settings, None)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == (
        f'Bearer resource_metadata="{PRM_URL}", scope="mcp"'
    )
    invalid = challenge_response(settings, InvalidTokenError('bad "quoted"\r\nX-Injected: 1'))
    assert invalid.headers["www-authenticate"] == (
        'Bearer error="invalid_token", error_description="bad quotedX-Injected: 1", '
        f'resource_metadata="{PRM_URL}", scope="mcp"'
    )
    weak = challenge_response(settings, InsufficientScopeError(frozenset({"b:w", "a:r", "mcp"})))
    assert weak.status_code == 403
    assert 'scope="mcp a:r b:w"' in weak.headers["www-authenticate"]


def test_bearer_token_parsing() -> None:
    from starlette.datastructures import Headers

    assert bearer_token(Headers({})) is None
    assert bearer_token(Headers({"authorization": "Bearer  abc.DEF-_~+/=="})) == "abc.DEF-_~+/=="
    with pytest.raises(InvalidTokenError):
        bearer_token(Headers({"authorization": "Bearer a=b"}))


async def test_unprotected_paths_need_no_token(client: httpx.AsyncClient) -> None:
    assert (await client.get("/public")).status_code == 200
    assert (await client.get("/.well-known/oauth-protected-resource/mcp")).status_code == 200


async def test_paths_below_the_mcp_path_are_protected(client: httpx.AsyncClient) -> None:
    assert (await client.get("/mcp/")).status_code == 401
    assert (await client.get("/mcp/anything")).status_code == 401
    assert (await client.get("/mcpx")).status_code == 404


async def test_cors_preflight_and_exposed_headers(
    client: httpx.AsyncClient, key: Key, clock: FakeClock
) -> None:
    origin = "http://localhost:6274"
    preflight = await client.options(
        "/mcp",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, mcp-protocol-version",
        },
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == origin
    allowed = preflight.headers["access-control-allow-headers"].lower()
    for name in ("authorization", "content-type", "mcp-session-id", "mcp-protocol-version"):
        assert name in allowed
    assert "POST" in preflight.headers["access-control-allow-methods"]

    denied = await client.post("/mcp", headers={"Origin": origin})
    assert denied.status_code == 401
    assert denied.headers["access-control-allow-origin"] == origin
    exposed = denied.headers["access-control-expose-headers"].lower()
    assert {"www-authenticate", "mcp-session-id", "mcp-protocol-version"} <= {
        name.strip() for name in exposed.split(",")
    }
    assert "origin" in denied.headers["vary"].lower()
    ok = await client.post("/mcp", headers={"Origin": origin, **bearer(mint(key, clock))})
    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == origin


async def test_cors_preflight_from_a_foreign_origin_is_403(client: httpx.AsyncClient) -> None:
    response = await client.options(
        "/mcp",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert response.status_code == 403
    assert "access-control-allow-origin" not in response.headers


class _BrokenKeys:
    async def get_jwks(self, force: bool = False) -> Any:
        raise KeySourceError("issuer unreachable")


async def test_key_source_outage_is_503_not_401(key: Key, clock: FakeClock) -> None:
    settings = make_settings()
    broken: KeySource = _BrokenKeys()
    app = build_app(settings, JwtTokenVerifier(settings, broken, clock=clock))
    async with client_for(app) as client:
        response = await client.get("/mcp", headers=bearer(mint(key, clock)))
    assert response.status_code == 503
    assert response.headers["retry-after"]


async def test_custom_protected_paths(key: Key, clock: FakeClock) -> None:
    settings = make_settings()
    verifier = make_verifier(settings, CountingKeySource(jwks_of(key)), clock)

    async def ok(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    app = BearerAuthMiddleware(ok, settings, verifier, protected_paths=["/private/"])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://mcp.example.com"
    ) as client:
        assert (await client.get("/mcp")).status_code == 200
        assert (await client.get("/private")).status_code == 401
        assert (await client.get("/private/x")).status_code == 401


async def test_over_a_real_uvicorn_socket(key: Key) -> None:
    """The whole stack on 127.0.0.1: challenge, discovery, a valid call, a DNS-rebinding Host."""
    settings = make_settings()
    verifier = JwtTokenVerifier(settings, CountingKeySource(jwks_of(key)))
    with serve_app(build_app(settings, verifier)) as base_url:
        async with httpx.AsyncClient(base_url=base_url) as client:
            challenge = await client.post("/mcp", json={})
            assert challenge.status_code == 401
            assert challenge_params(challenge)["resource_metadata"] == PRM_URL
            prm = await client.get("/.well-known/oauth-protected-resource/mcp")
            assert prm.json()["resource"] == RESOURCE
            token = mint_access_token(key, issuer=ISSUER, audience=RESOURCE)
            ok = await client.post("/mcp", headers=bearer(token))
            assert ok.status_code == 200
            assert ok.json()["subject"] == "alice"
            rebound = await client.post(
                "/mcp", headers={**bearer(token), "Host": "attacker.example:8000"}
            )
            assert rebound.status_code == 403
            garbage = await client.post("/mcp", headers={b"Authorization": b"Bearer \xff\xfe"})
            assert garbage.status_code == 401
