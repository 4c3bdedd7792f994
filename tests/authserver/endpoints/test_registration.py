"""Dynamic client registration (RFC 7591): S45, S46, S47, S48, S18, S22, S56."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from authserver.clients.redirect_uris import validate_redirect_uri
from authserver.clients.store import CLIENT_ID_PREFIX, new_client_id
from authserver.context import AuthServer
from authserver.endpoints.app import create_app
from authserver.errors import InvalidRedirectUriError
from authserver.storage.crypto import hash_token
from authserver.storage.models import Client
from tests.conftest import TEST_ISSUER
from tests.support.factories import create_user

PUBLIC = {
    "client_name": "Test MCP Client",
    "redirect_uris": ["http://127.0.0.1:33418/callback"],
    "grant_types": ["authorization_code", "refresh_token"],
    "response_types": ["code"],
    "token_endpoint_auth_method": "none",
}


def client_row(server: AuthServer, client_id: str) -> Client | None:
    with server.database.transaction() as session:
        return session.get(Client, client_id)


def count_clients(server: AuthServer) -> int:
    with server.database.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(Client)) or 0)


async def register(
    client: httpx.AsyncClient, body: dict[str, Any], **kwargs: Any
) -> httpx.Response:
    return await client.post("/register", json=body, **kwargs)


async def test_public_registration_happy_path(
    as_client: httpx.AsyncClient, auth_server: AuthServer
) -> None:
    response = await register(as_client, PUBLIC)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["client_id"].startswith(CLIENT_ID_PREFIX)
    assert body["redirect_uris"] == PUBLIC["redirect_uris"]
    assert body["token_endpoint_auth_method"] == "none"
    assert body["grant_types"] == ["authorization_code", "refresh_token"]
    assert body["client_name"] == "Test MCP Client"
    assert isinstance(body["client_id_issued_at"], int)
    assert body["registration_client_uri"] == f"{TEST_ISSUER}/register/{body['client_id']}"
    assert body["registration_access_token"]
    row = client_row(auth_server, body["client_id"])
    assert row is not None
    assert row.kind == "dynamic"
    assert row.registered_from == "127.0.0.1"
    assert row.registration_token_hash == hash_token(body["registration_access_token"])


async def test_confidential_registration_gets_secret(
    as_client: httpx.AsyncClient, auth_server: AuthServer
) -> None:
    response = await register(
        as_client,
        {"redirect_uris": ["https://app.example.com/cb"], "client_name": "Server app"},
    )
    assert response.status_code == 201
    body = response.json()
    # RFC 7591 §2: the default method is client_secret_basic.
    assert body["token_endpoint_auth_method"] == "client_secret_basic"
    assert body["client_secret"]
    assert body["client_secret_expires_at"] == 0
    row = client_row(auth_server, body["client_id"])
    assert row is not None
    assert row.secret_hash == hash_token(body["client_secret"])


@pytest.mark.parametrize(
    "grant_types", [["client_credentials"], ["authorization_code", "client_credentials"]]
)
async def test_client_credentials_cannot_be_self_registered(
    as_client: httpx.AsyncClient, auth_server: AuthServer, grant_types: list[str]
) -> None:
    """Tokens with no user behind them are for administrator-made clients only."""
    before = count_clients(auth_server)
    response = await register(
        as_client,
        {
            "grant_types": grant_types,
            "redirect_uris": ["https://app.example.com/cb"],
            "token_endpoint_auth_method": "client_secret_post",
        },
    )
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "invalid_client_metadata"
    assert "administrator" in body["error_description"]
    assert count_clients(auth_server) == before


BAD_REDIRECTS = [
    "javascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "file:///etc/passwd",
    "vbscript:msgbox(1)",
    "http://evil.example.com/cb",
    "http://127.0.0.1.evil.com/cb",
    "https://app.example.com/cb#frag",
    "https://app.example.com/cb#",
    "https://*.example.com/cb",
    "https://app.example.com/*",
    "/relative/callback",
    "callback",
    "//app.example.com/cb",
    "https://user:pass@app.example.com/cb",
    "https://good.example.com@evil.example.com/cb",
    "https:///no-host",
    "https://app.example.com/c b",
    "myapp://callback",
    "com.example.app://host/cb",
    "",
]


@pytest.mark.parametrize("uri", BAD_REDIRECTS)
async def test_s45_bad_redirect_uri_rejected(as_client: httpx.AsyncClient, uri: str) -> None:
    response = await register(as_client, {**PUBLIC, "redirect_uris": [uri]})
    assert response.status_code == 400, (uri, response.text)
    assert response.json()["error"] == "invalid_redirect_uri"
    assert response.headers["cache-control"] == "no-store"


async def test_s45_non_string_and_missing_redirect_uris(as_client: httpx.AsyncClient) -> None:
    for value in ([42], "https://app.example.com/cb", [None]):
        response = await register(as_client, {**PUBLIC, "redirect_uris": value})
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_redirect_uri"
    without = {key: value for key, value in PUBLIC.items() if key != "redirect_uris"}
    response = await register(as_client, without)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_redirect_uri"


@pytest.mark.parametrize(
    "uri",
    [
        "https://app.example.com/cb",
        "https://app.example.com:8443/cb?x=1",
        "http://127.0.0.1/callback",
        "http://127.0.0.1:6276/oauth/callback",
        "http://[::1]:8080/cb",
        "http://localhost:3000/cb",
        "com.example.app:/oauth2redirect",
        "io.github.user.tool:/cb",
    ],
)
def test_s45_good_redirect_uris_accepted(uri: str) -> None:
    assert validate_redirect_uri(uri) == uri


def test_s45_validator_raises_typed_error() -> None:
    with pytest.raises(InvalidRedirectUriError):
        validate_redirect_uri("javascript:alert(1)")


async def test_s46_unknown_metadata_and_chosen_credentials_ignored(
    as_client: httpx.AsyncClient, auth_server: AuthServer
) -> None:
    response = await register(
        as_client,
        {
            **PUBLIC,
            "client_id": "chosen-id",
            "client_secret": "chosen-secret",
            "registration_access_token": "chosen-token",
            "x_custom": "x" * 100,
            "jwks": {"keys": []},
            "client_uri": "https://app.example.com",
            "software_id": "4NRB1-0XZABZI9E6-5SM3R",
        },
    )
    assert response.status_code == 201
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["client_id"] != "chosen-id"
    assert body["client_id"].startswith(CLIENT_ID_PREFIX)
    assert body["registration_access_token"] != "chosen-token"
    assert "client_secret" not in body  # none gets no secret
    assert "client_secret_expires_at" not in body
    assert "x_custom" not in body
    assert "jwks" not in body
    assert body["client_uri"] == "https://app.example.com"
    assert body["software_id"] == "4NRB1-0XZABZI9E6-5SM3R"
    row = client_row(auth_server, body["client_id"])
    assert row is not None
    assert row.secret_hash is None
    assert "x_custom" not in row.client_metadata
    assert client_row(auth_server, "chosen-id") is None


async def test_s46_confidential_client_cannot_choose_secret(
    as_client: httpx.AsyncClient, auth_server: AuthServer
) -> None:
    response = await register(
        as_client,
        {
            "redirect_uris": ["https://app.example.com/cb"],
            "token_endpoint_auth_method": "client_secret_post",
            "client_secret": "chosen-secret",
        },
    )
    body = response.json()
    assert body["client_secret"] != "chosen-secret"
    row = client_row(auth_server, body["client_id"])
    assert row is not None
    assert row.secret_hash == hash_token(body["client_secret"])


@pytest.mark.parametrize(
    "changes",
    [
        {"grant_types": ["implicit"]},
        {"grant_types": ["password"]},
        {"response_types": ["token"]},
        {"response_types": ["code", "id_token"]},
        {"token_endpoint_auth_method": "private_key_jwt"},
        {"token_endpoint_auth_method": "client_secret_jwt"},
        {"grant_types": ["client_credentials"], "token_endpoint_auth_method": "none"},
        {"grant_types": ["refresh_token"]},
        {"scope": "mcp admin"},
        {"scope": 7},
        {"client_name": ["x"]},
        {"client_name": "n" * 257},
        {"client_uri": "http://app.example.com"},
        {"logo_uri": "javascript:alert(1)"},
        {"tos_uri": "https://user@app.example.com/tos"},
        {"policy_uri": "/relative"},
        {"grant_types": "authorization_code"},
    ],
)
async def test_invalid_client_metadata(
    as_client: httpx.AsyncClient, changes: dict[str, Any]
) -> None:
    response = await register(as_client, {**PUBLIC, **changes})
    assert response.status_code == 400, (changes, response.text)
    assert response.json()["error"] == "invalid_client_metadata"


async def test_scope_within_supported_scopes(as_client: httpx.AsyncClient) -> None:
    response = await register(as_client, {**PUBLIC, "scope": "notes:read mcp notes:read"})
    assert response.status_code == 201
    assert response.json()["scope"] == "notes:read mcp"


async def test_s47_software_statement_rejected(as_client: httpx.AsyncClient) -> None:
    for statement in ("eyJhbGciOiJub25lIn0.eyJzb2Z0d2FyZV9pZCI6IngifQ.", "", None, 5):
        response = await register(as_client, {**PUBLIC, "software_statement": statement})
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_software_statement"
        assert response.headers["cache-control"] == "no-store"


async def test_s48_registration_rate_limited(make_server: Callable[..., AuthServer]) -> None:
    now = [1_800_000_010.0]
    server = make_server(clock=lambda: now[0], registration_rate_per_minute=3)
    transport = httpx.ASGITransport(app=create_app(server))
    async with httpx.AsyncClient(transport=transport, base_url=TEST_ISSUER) as client:
        statuses = []
        for index in range(4):
            body = {**PUBLIC, "client_name": f"client {index}"}
            statuses.append((await register(client, body)).status_code)
        assert statuses == [201, 201, 201, 429]
        limited = await register(client, PUBLIC)
        assert limited.status_code == 429
        assert limited.json()["error"] == "slow_down"
        retry_after = int(limited.headers["retry-after"])
        assert 1 <= retry_after <= 60
        # Invalid requests count too: they cost the server work.
        assert (await client.post("/register", content=b"not json")).status_code == 429
        now[0] += retry_after
        assert (await register(client, {**PUBLIC, "client_name": "later"})).status_code == 201
    # Another IP has its own budget.
    other = httpx.ASGITransport(app=create_app(server), client=("10.9.8.7", 5000))
    async with httpx.AsyncClient(transport=other, base_url=TEST_ISSUER) as client:
        assert (await register(client, {**PUBLIC, "client_name": "other ip"})).status_code == 201


async def test_s48_body_size_capped(as_client: httpx.AsyncClient) -> None:
    big = {**PUBLIC, "padding": "x" * 17_000}
    response = await register(as_client, big)
    assert response.status_code == 413
    assert response.json()["error"] == "invalid_client_metadata"

    async def chunks() -> Any:
        for _ in range(20):
            yield b" " * 1024

    streamed = await as_client.post(
        "/register", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert streamed.status_code == 413


async def test_s48_array_and_string_sizes_capped(as_client: httpx.AsyncClient) -> None:
    many = [f"http://127.0.0.1/cb{index}" for index in range(11)]
    response = await register(as_client, {**PUBLIC, "redirect_uris": many})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_client_metadata"
    ten = await register(as_client, {**PUBLIC, "redirect_uris": many[:10]})
    assert ten.status_code == 201
    long_uri = "https://app.example.com/" + "a" * 2100
    response = await register(as_client, {**PUBLIC, "redirect_uris": [long_uri]})
    assert response.status_code == 400
    response = await register(as_client, {**PUBLIC, "client_uri": long_uri})
    assert response.status_code == 400
    response = await register(as_client, {**PUBLIC, "contacts": ["a@example.com"] * 11})
    assert response.status_code == 400
    response = await register(as_client, {**PUBLIC, "software_version": "v" * 300})
    assert response.status_code == 400


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        (b"client_name=x", "application/x-www-form-urlencoded", 415),
        (json.dumps(PUBLIC).encode(), "text/plain", 415),
        (b"{not json", "application/json", 400),
        (b"[1, 2]", "application/json", 400),
        (b"\xff\xfe", "application/json", 400),
    ],
)
async def test_registration_needs_a_json_object(
    as_client: httpx.AsyncClient, content: bytes, content_type: str, status: int
) -> None:
    response = await as_client.post(
        "/register", content=content, headers={"Content-Type": content_type}
    )
    assert response.status_code == status
    assert response.json()["error"] == "invalid_client_metadata"


async def test_json_with_charset_accepted(as_client: httpx.AsyncClient) -> None:
    response = await as_client.post(
        "/register",
        content=json.dumps(PUBLIC).encode(),
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 201


async def test_s48_identical_public_registration_reuses_client(
    as_client: httpx.AsyncClient, auth_server: AuthServer
) -> None:
    first = (await register(as_client, PUBLIC)).json()
    # Same metadata in another order and with ignored extras is the same registration.
    shuffled = dict(reversed(list(PUBLIC.items())))
    second_response = await register(as_client, {**shuffled, "x_unknown": 1})
    assert second_response.status_code == 201
    second = second_response.json()
    assert second["client_id"] == first["client_id"]
    assert second["client_id_issued_at"] == first["client_id_issued_at"]
    assert count_clients(auth_server) == 1
    # The repeat gets the client but not its management: no token, no management URI.
    assert "registration_access_token" not in second
    assert "registration_client_uri" not in second
    assert {key: value for key, value in second.items() if not key.startswith("registration")} == {
        key: value for key, value in first.items() if not key.startswith("registration")
    }
    # The first registrant's token ends: a client two registrants hold is managed by none (S98).
    path = f"/register/{first['client_id']}"
    ended = await as_client.get(
        path, headers={"Authorization": f"Bearer {first['registration_access_token']}"}
    )
    assert ended.status_code == 401


async def test_s48_repeated_registration_cannot_take_over_management(
    as_client: httpx.AsyncClient,
) -> None:
    """Another party behind the same address registering the same metadata must not be able
    to change the first registrant's client (e.g. point its redirect URIs elsewhere)."""
    victim = (await register(as_client, PUBLIC)).json()
    repeat = (await register(as_client, PUBLIC)).json()
    assert repeat["client_id"] == victim["client_id"]
    assert "registration_access_token" not in repeat
    path = f"/register/{victim['client_id']}"
    hijack = {
        **PUBLIC,
        "client_id": victim["client_id"],
        "redirect_uris": ["https://evil.example/cb"],
    }
    for token in ("", "None", victim["client_id"]):
        response = await as_client.put(
            path, json=hijack, headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 401
    # Handed to a second registrant, the client is managed by no one, the first included (S98).
    first = await as_client.get(
        path, headers={"Authorization": f"Bearer {victim['registration_access_token']}"}
    )
    assert first.status_code == 401


async def test_s48_reuse_only_for_identical_public_unused_same_ip(
    as_client: httpx.AsyncClient, auth_server: AuthServer
) -> None:
    first = (await register(as_client, PUBLIC)).json()
    different = (await register(as_client, {**PUBLIC, "client_name": "Other"})).json()
    assert different["client_id"] != first["client_id"]
    other_ip = httpx.ASGITransport(app=create_app(auth_server), client=("192.0.2.7", 4000))
    async with httpx.AsyncClient(transport=other_ip, base_url=TEST_ISSUER) as client:
        elsewhere = (await register(client, PUBLIC)).json()
    assert elsewhere["client_id"] != first["client_id"]
    confidential = {**PUBLIC, "token_endpoint_auth_method": "client_secret_basic"}
    one = (await register(as_client, confidential)).json()
    two = (await register(as_client, confidential)).json()
    assert one["client_id"] != two["client_id"]
    assert one["client_secret"] != two["client_secret"]
    # Once a client obtained tokens it is never handed to another registrant.
    with auth_server.database.transaction() as session:
        row = session.get(Client, first["client_id"])
        assert row is not None
        row.last_used_at = auth_server.now()
    again = (await register(as_client, PUBLIC)).json()
    assert again["client_id"] != first["client_id"]


async def test_registration_closed(make_server: Callable[..., AuthServer]) -> None:
    server = make_server(registration_open=False)
    transport = httpx.ASGITransport(app=create_app(server))
    async with httpx.AsyncClient(transport=transport, base_url=TEST_ISSUER) as client:
        response = await register(client, PUBLIC)
    assert response.status_code == 403
    assert count_clients(server) == 0


async def test_s8_registration_cors(as_client: httpx.AsyncClient) -> None:
    preflight = await as_client.options(
        "/register",
        headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "*"
    ok = await register(as_client, PUBLIC, headers={"Origin": "https://app.example"})
    assert ok.headers["access-control-allow-origin"] == "*"
    error = await register(as_client, {**PUBLIC, "redirect_uris": ["javascript:x"]})
    assert error.headers["access-control-allow-origin"] == "*"


def _random_bytes(value: str) -> bytes:
    """Decode a URL-safe base64 token (what :func:`secrets.token_urlsafe` produces)."""
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


async def test_s18_client_ids_secrets_and_registration_tokens_have_entropy(
    as_client: httpx.AsyncClient,
) -> None:
    confidential = {**PUBLIC, "token_endpoint_auth_method": "client_secret_basic"}
    seen: set[str] = set()
    for index in range(5):
        body = (await register(as_client, {**confidential, "client_name": f"c{index}"})).json()
        random_part = body["client_id"].removeprefix(CLIENT_ID_PREFIX)
        for value in (random_part, body["client_secret"], body["registration_access_token"]):
            assert len(_random_bytes(value)) * 8 >= 128
            assert value not in seen
            seen.add(value)
        assert len(_random_bytes(body["client_secret"])) * 8 >= 256


async def test_s56_registration_secrets_stored_hashed(
    as_client: httpx.AsyncClient, auth_server: AuthServer
) -> None:
    confidential = {**PUBLIC, "token_endpoint_auth_method": "client_secret_post"}
    body = (await register(as_client, confidential)).json()
    with auth_server.database.engine.connect() as conn:
        dump = json.dumps(
            [list(row) for row in conn.exec_driver_sql("SELECT * FROM oauth_clients")]
        )
    assert body["client_secret"] not in dump
    assert body["registration_access_token"] not in dump


async def test_s22_client_id_chosen_as_user_id_is_ignored(
    as_client: httpx.AsyncClient, auth_server: AuthServer
) -> None:
    user = create_user(auth_server, username="alice")
    for chosen in (user.id, "alice"):
        body = (
            await register(as_client, {**PUBLIC, "client_id": chosen, "client_name": chosen})
        ).json()
        assert body["client_id"] not in (user.id, "alice")
        assert body["client_id"].startswith(CLIENT_ID_PREFIX)


def test_s22_generated_client_id_never_collides_with_a_user(auth_server: AuthServer) -> None:
    user = create_user(auth_server, username=CLIENT_ID_PREFIX + "taken")
    candidates = iter([user.id, user.username, CLIENT_ID_PREFIX + "fresh"])
    with auth_server.database.transaction() as session:
        assert new_client_id(session, lambda: next(candidates)) == CLIENT_ID_PREFIX + "fresh"
    with auth_server.database.transaction() as session, pytest.raises(RuntimeError):
        new_client_id(session, lambda: user.id)
