"""Request validation at the authorization endpoint (SECURITY-CASES A, B and E, authorize side)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import select

from authserver.config.settings import CharterSettings
from authserver.context import AuthServer
from authserver.endpoints.app import create_app
from authserver.oauth.redirects import match_redirect_uri
from authserver.storage.crypto import hash_token
from authserver.storage.models import AuthorizationCode
from tests.support.browser_flow import authorize_params, authorize_with_login, pkce_pair
from tests.support.factories import create_client, create_user

PASSWORD = "correct horse battery"
ISSUER = "http://127.0.0.1:8000"
RESOURCE = "http://127.0.0.1:8000/mcp"


def code_row(server: AuthServer, code: str) -> AuthorizationCode:
    with server.database.transaction() as session:
        row = session.get(AuthorizationCode, hash_token(code))
    assert row is not None
    return row


def is_login_page(response: httpx.Response) -> bool:
    return response.status_code == 200 and 'data-form="login"' in response.text


def assert_error_page(response: httpx.Response, error: str = "") -> None:
    """Shown on our own page: 400 HTML, no redirect."""
    assert response.status_code == 400, response.text
    assert "location" not in response.headers
    assert response.headers["content-type"].startswith("text/html")
    assert error in response.text


def redirected_error(response: httpx.Response, error: str) -> httpx.URL:
    assert response.status_code == 302, response.text
    location = httpx.URL(response.headers["location"])
    assert location.params["error"] == error
    assert location.params["iss"] == ISSUER
    return location


@pytest.fixture
def static_client(auth_server: AuthServer) -> str:
    client, _ = create_client(auth_server, redirect_uris=["https://app.example.com/cb"])
    return client.client_id


def good(client_id: str, **extra: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "redirect_uri": "https://app.example.com/cb",
        "code_challenge": pkce_pair()[1],
        **extra,
    }
    redirect_uri = values.pop("redirect_uri")
    challenge = values.pop("code_challenge")
    return authorize_params(client_id, redirect_uri, challenge, **values)


# S1 / S2 / S3: redirect URIs


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://app.example.com/cb/",
        "https://app.example.com/cb?extra=1",
        "https://app.example.com/cb2",
        "https://app.example.com/",
        "https://app.example.com@evil.example/cb",
        "https://app.example.com.evil.example/cb",
        "https://app.example.com/%63b",
        "https://APP.example.com/cb",
        "HTTPS://app.example.com/cb",
        "https://app.example.com:443/cb",
        "https://app.example.com:8443/cb",
        "http://app.example.com/cb",
        "https://app.example.com/cb#frag",
        "",
    ],
)
async def test_s1_redirect_uri_exact_match(
    as_client: httpx.AsyncClient, static_client: str, redirect_uri: str
) -> None:
    params = good(static_client, redirect_uri=redirect_uri)
    assert_error_page(await as_client.get("/authorize", params=params), "redirect_uri")
    # The registered value itself is accepted.
    assert is_login_page(await as_client.get("/authorize", params=good(static_client)))


async def test_s1_bad_redirect_never_redirects_even_with_other_errors(
    as_client: httpx.AsyncClient, static_client: str
) -> None:
    params = good(static_client, redirect_uri="https://evil.example/cb", response_type="token")
    assert_error_page(await as_client.get("/authorize", params=params))


@pytest.mark.parametrize(
    ("registered", "requested", "ok"),
    [
        ("http://127.0.0.1/cb", "http://127.0.0.1:5000/cb", True),
        ("http://127.0.0.1/cb", "http://127.0.0.1/cb", True),
        ("http://127.0.0.1:3000/cb", "http://127.0.0.1:5000/cb", True),
        ("http://[::1]/cb", "http://[::1]:5000/cb", True),
        ("http://localhost/cb", "http://localhost:65535/cb", True),
        ("http://127.0.0.1/cb?a=1", "http://127.0.0.1:5000/cb?a=1", True),
        ("http://127.0.0.1/cb", "http://127.0.0.1:5000/cb/", False),
        ("http://127.0.0.1/cb", "http://127.0.0.1:5000/other", False),
        ("http://127.0.0.1/cb", "http://127.0.0.1:5000/cb?a=1", False),
        ("http://127.0.0.1/cb", "https://127.0.0.1:5000/cb", False),
        ("http://127.0.0.1/cb", "http://localhost:5000/cb", False),
        ("http://localhost/cb", "http://LOCALHOST:5000/cb", False),
        ("http://127.0.0.1/cb", "http://127.0.0.1.evil.com:5000/cb", False),
        ("http://127.0.0.1/cb", "http://127.0.0.1:5000@evil.com/cb", False),
        ("http://127.0.0.1/cb", "http://evil.com@127.0.0.1:5000/cb", False),
        ("http://127.0.0.1/cb", "http://127.0.0.1:99999/cb", False),
        ("http://127.0.0.1/cb", "http://127.0.0.1:0/cb", False),
        ("http://127.0.0.1/cb", "http://127.0.0.2:5000/cb", False),
        ("https://app.example.com/cb", "https://app.example.com:8443/cb", False),
    ],
)
def test_s2_loopback_any_port_only(registered: str, requested: str, ok: bool) -> None:
    match = match_redirect_uri([registered], requested)
    assert (match is not None) is ok
    if match is not None:
        assert match.redirect_uri == requested
        assert match.registered == registered


async def test_s2_loopback_port_over_http(
    auth_server: AuthServer, as_client: httpx.AsyncClient
) -> None:
    client, _ = create_client(auth_server, redirect_uris=["http://127.0.0.1/cb"])
    challenge = pkce_pair()[1]
    ok = authorize_params(client.client_id, "http://127.0.0.1:49152/cb", challenge)
    assert is_login_page(await as_client.get("/authorize", params=ok))
    evil = authorize_params(client.client_id, "http://127.0.0.1.evil.com:49152/cb", challenge)
    assert_error_page(await as_client.get("/authorize", params=evil))


async def test_s3_unknown_or_missing_client_shows_page(
    as_client: httpx.AsyncClient, static_client: str
) -> None:
    assert_error_page(
        await as_client.get("/authorize", params=good("no-such-client")), "invalid_client"
    )
    params = good(static_client)
    del params["client_id"]
    assert_error_page(await as_client.get("/authorize", params=params))
    assert_error_page(
        await as_client.get(
            "/authorize", params=good(static_client, redirect_uri="https://x.example/cb")
        )
    )


async def test_s3_omitted_redirect_uri_needs_exactly_one(
    auth_server: AuthServer, as_client: httpx.AsyncClient
) -> None:
    one, _ = create_client(auth_server, redirect_uris=["https://one.example/cb"])
    several, _ = create_client(
        auth_server, redirect_uris=["https://two.example/a", "https://two.example/b"]
    )
    challenge = pkce_pair()[1]
    assert is_login_page(
        await as_client.get("/authorize", params=authorize_params(one.client_id, None, challenge))
    )
    assert_error_page(
        await as_client.get(
            "/authorize", params=authorize_params(several.client_id, None, challenge)
        ),
        "several redirect URIs",
    )


async def test_s3_omitted_redirect_uri_recorded_in_code(
    auth_server: AuthServer, as_client: httpx.AsyncClient
) -> None:
    create_user(auth_server)
    client, _ = create_client(auth_server, redirect_uris=["https://one.example/cb"])
    location = await authorize_with_login(
        as_client, authorize_params(client.client_id, None, pkce_pair()[1]), "alice", PASSWORD
    )
    assert str(location).startswith("https://one.example/cb?")
    row = code_row(auth_server, location.params["code"])
    assert row.redirect_uri == "https://one.example/cb"
    assert row.redirect_uri_sent is False


async def test_s4_dynamic_client_errors_not_auto_redirected(
    auth_server: AuthServer, as_client: httpx.AsyncClient
) -> None:
    client, _ = create_client(
        auth_server, redirect_uris=["https://attacker.example/cb"], kind="dynamic"
    )
    params = authorize_params(client.client_id, "https://attacker.example/cb", "", state="s1")
    response = await as_client.get("/authorize", params=params)
    assert response.status_code == 400
    assert "location" not in response.headers
    assert "attacker.example" in response.text  # the user sees where the link goes
    assert 'id="return-to-client"' in response.text
    assert "error=invalid_request" in response.text


async def test_s4_static_client_errors_redirected(
    as_client: httpx.AsyncClient, static_client: str
) -> None:
    params = good(static_client, code_challenge=None, state="s1")
    location = redirected_error(await as_client.get("/authorize", params=params), "invalid_request")
    assert location.params["state"] == "s1"


async def test_s4_dynamic_client_errors_redirected_after_consent(
    auth_server: AuthServer, as_client: httpx.AsyncClient
) -> None:
    create_user(auth_server)
    client, _ = create_client(auth_server, redirect_uris=["https://app.example/cb"], kind="dynamic")
    challenge = pkce_pair()[1]
    await authorize_with_login(
        as_client,
        authorize_params(client.client_id, "https://app.example/cb", challenge),
        "alice",
        PASSWORD,
    )
    params = authorize_params(client.client_id, "https://app.example/cb", challenge, scope="admin")
    redirected_error(await as_client.get("/authorize", params=params), "invalid_scope")


# S5 / S6 / S7: responses, response_type, parameters


async def test_s5_state_and_iss_on_success_and_error(
    auth_server: AuthServer, as_client: httpx.AsyncClient, static_client: str
) -> None:
    create_user(auth_server)
    state = "a b&c=d/é%20+?#x"
    location = await authorize_with_login(
        as_client, good(static_client, state=state), "alice", PASSWORD
    )
    assert location.params["state"] == state
    assert location.params["iss"] == ISSUER
    error = redirected_error(
        await as_client.get("/authorize", params=good(static_client, state=state, scope="nope")),
        "invalid_scope",
    )
    assert error.params["state"] == state
    no_state = redirected_error(
        await as_client.get("/authorize", params=good(static_client, state=None, scope="nope")),
        "invalid_scope",
    )
    assert "state" not in no_state.params


async def test_s5_metadata_announces_iss(as_client: httpx.AsyncClient) -> None:
    document = (await as_client.get("/.well-known/oauth-authorization-server")).json()
    assert document["authorization_response_iss_parameter_supported"] is True


@pytest.mark.parametrize("response_type", ["token", "code id_token", "id_token", "CODE"])
async def test_s6_unsupported_response_type(
    as_client: httpx.AsyncClient, static_client: str, response_type: str
) -> None:
    response = await as_client.get(
        "/authorize", params=good(static_client, response_type=response_type)
    )
    redirected_error(response, "unsupported_response_type")


async def test_s6_missing_response_type(as_client: httpx.AsyncClient, static_client: str) -> None:
    params = good(static_client)
    del params["response_type"]
    redirected_error(await as_client.get("/authorize", params=params), "invalid_request")


@pytest.mark.parametrize("name", ["state", "code_challenge", "scope", "response_type"])
async def test_s7_duplicate_parameters_rejected(
    as_client: httpx.AsyncClient, static_client: str, name: str
) -> None:
    params = list(good(static_client, scope="mcp").items())
    params.append((name, dict(params)[name]))
    location = redirected_error(await as_client.get("/authorize", params=params), "invalid_request")
    if name == "state":
        assert "state" not in location.params  # never guess which one to echo


@pytest.mark.parametrize("name", ["client_id", "redirect_uri"])
async def test_s7_duplicate_client_or_redirect_shown_on_page(
    as_client: httpx.AsyncClient, static_client: str, name: str
) -> None:
    params = list(good(static_client).items())
    params.append((name, dict(params)[name]))
    assert_error_page(await as_client.get("/authorize", params=params), "invalid_request")


async def test_s7_unknown_parameters_ignored(
    as_client: httpx.AsyncClient, static_client: str
) -> None:
    params = good(static_client, foo="bar", prompt="select_account", nonce="n")
    assert is_login_page(await as_client.get("/authorize", params=params))


async def test_s7_hostile_4kb_state_only_url_encoded(
    auth_server: AuthServer, as_client: httpx.AsyncClient, static_client: str
) -> None:
    create_user(auth_server)
    chunk = "<script>alert(1)</script>\"'&=?#%00\r\n\u202e😀"
    state = (chunk * (4096 // len(chunk) + 1))[:4096]
    page = await as_client.get("/authorize", params=good(static_client, state=state))
    assert "<script>alert(1)</script>" not in page.text
    location = await authorize_with_login(
        as_client, good(static_client, state=state), "alice", PASSWORD
    )
    assert location.params["state"] == state
    assert "<" not in str(location) and " " not in str(location)
    error = await as_client.get("/authorize", params=good(static_client, state=state, scope="zz"))
    assert redirected_error(error, "invalid_scope").params["state"] == state
    assert "\r" not in error.headers["location"] and "\n" not in error.headers["location"]


# S9 scopes


async def test_s9_scope_outside_client_set(
    auth_server: AuthServer, as_client: httpx.AsyncClient
) -> None:
    client, _ = create_client(
        auth_server, redirect_uris=["https://app.example.com/cb"], scope="mcp"
    )
    for scope in ("mcp notes:read", "notes:write", "admin", "mcp unknown"):
        response = await as_client.get("/authorize", params=good(client.client_id, scope=scope))
        redirected_error(response, "invalid_scope")
    assert is_login_page(
        await as_client.get("/authorize", params=good(client.client_id, scope="mcp"))
    )


async def test_s9_default_scope_stored_in_code(
    auth_server: AuthServer, as_client: httpx.AsyncClient, static_client: str
) -> None:
    create_user(auth_server)
    location = await authorize_with_login(as_client, good(static_client), "alice", PASSWORD)
    assert code_row(auth_server, location.params["code"]).scope == "mcp"


# S10 / S11 / S12 PKCE


async def test_s10_code_challenge_required(
    as_client: httpx.AsyncClient, static_client: str
) -> None:
    for challenge in (None, ""):
        params = good(static_client, code_challenge=challenge)
        redirected_error(await as_client.get("/authorize", params=params), "invalid_request")


@pytest.mark.parametrize("method", [None, "plain", "s256", "S384", ""])
async def test_s11_only_s256(
    as_client: httpx.AsyncClient, static_client: str, method: str | None
) -> None:
    params = good(static_client, code_challenge_method=method)
    assert params.get("code_challenge_method") == method
    redirected_error(await as_client.get("/authorize", params=params), "invalid_request")


@pytest.mark.parametrize(
    ("challenge", "ok"),
    [
        ("a" * 42, False),
        ("a" * 43, True),
        ("a" * 128, True),
        ("a" * 129, False),
        ("a" * 42 + "+", False),
        ("a" * 42 + "=", False),
        ("a" * 42 + "/", False),
        ("a" * 42 + " ", False),
        ("a" * 42 + "é", False),
        ("Az09-._~" * 6, True),
    ],
)
async def test_s12_challenge_length_and_charset(
    as_client: httpx.AsyncClient, static_client: str, challenge: str, ok: bool
) -> None:
    response = await as_client.get(
        "/authorize", params=good(static_client, code_challenge=challenge)
    )
    if ok:
        assert is_login_page(response)
    else:
        redirected_error(response, "invalid_request")


# S17 / S18 codes


async def test_s17_code_bound_to_client_redirect_and_lifetime(
    auth_server: AuthServer, as_client: httpx.AsyncClient
) -> None:
    user = create_user(auth_server)
    client, _ = create_client(auth_server, redirect_uris=["http://127.0.0.1/cb"])
    _, challenge = pkce_pair()
    params = authorize_params(
        client.client_id, "http://127.0.0.1:61000/cb", challenge, scope="mcp notes:read"
    )
    location = await authorize_with_login(as_client, params, "alice", PASSWORD)
    code = location.params["code"]
    row = code_row(auth_server, code)
    assert row.client_id == client.client_id
    assert row.subject == user.id
    assert row.redirect_uri == "http://127.0.0.1:61000/cb"
    assert row.redirect_uri_sent is True
    assert row.scope == "mcp notes:read"
    assert row.resource == RESOURCE
    assert row.code_challenge == challenge
    assert row.code_challenge_method == "S256"
    assert row.consumed_at is None
    assert row.expires_at - row.created_at == auth_server.settings.authorization_code_ttl
    assert 0 < row.expires_at - row.created_at <= 600
    # Only the hash is stored.
    with auth_server.database.transaction() as session:
        stored = session.scalars(select(AuthorizationCode.code_hash)).all()
    assert code not in stored


def test_s17_code_lifetime_capped_at_ten_minutes() -> None:
    with pytest.raises(ValidationError):
        CharterSettings(authorization_code_ttl=601)


def token_bits(value: str) -> int:
    raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    return len(raw) * 8


async def test_s18_codes_cookies_and_csrf_tokens_have_128_bits(
    auth_server: AuthServer, as_client: httpx.AsyncClient, static_client: str
) -> None:
    create_user(auth_server)
    codes: set[str] = set()
    for _ in range(3):
        location = await authorize_with_login(as_client, good(static_client), "alice", PASSWORD)
        codes.add(location.params["code"])
    assert len(codes) == 3
    assert all(token_bits(code) >= 128 for code in codes)
    for name in ("charter_session", "charter_browser"):
        value = as_client.cookies[name]
        assert token_bits(value) >= 128
    transport = httpx.ASGITransport(app=create_app(auth_server))
    async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as fresh:
        page = await fresh.get("/authorize", params=good(static_client))
    csrf = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    request_id = page.text.split('name="request_id" value="')[1].split('"')[0]
    assert token_bits(csrf) >= 128
    assert token_bits(request_id) >= 128


# S28-S31 resource indicators (authorize side)


@pytest.mark.parametrize(
    "resource",
    [
        "https://other.example/mcp",
        "/mcp",
        "mcp",
        "http://127.0.0.1:8000/mcp#frag",
        "http://127.0.0.1:8000/mcp/",
        "http://127.0.0.1:8000/mcp/extra",
        "http://127.0.0.1:8000/mc",
        "http://127.0.0.1:8000",
        "http://127.0.0.1:8001/mcp",
        "https://127.0.0.1:8000/mcp",
        "http://user@127.0.0.1:8000/mcp",
        "urn:example:mcp",
    ],
)
async def test_s28_s29_unknown_relative_fragment_or_prefix_resource_is_invalid_target(
    as_client: httpx.AsyncClient, static_client: str, resource: str
) -> None:
    params = good(static_client, resource=resource, state="r1")
    location = redirected_error(await as_client.get("/authorize", params=params), "invalid_target")
    assert location.params["state"] == "r1"


@pytest.mark.parametrize(
    "resource",
    ["http://127.0.0.1:8000/mcp", "HTTP://127.0.0.1:8000/mcp", "http://127.0.0.1:8000/mcp?x=1"],
)
async def test_s29_canonical_resource_stored(
    auth_server: AuthServer, as_client: httpx.AsyncClient, static_client: str, resource: str
) -> None:
    create_user(auth_server)
    location = await authorize_with_login(
        as_client, good(static_client, resource=resource), "alice", PASSWORD
    )
    assert code_row(auth_server, location.params["code"]).resource == RESOURCE


async def test_s29_default_port_and_host_case(
    make_server: Callable[..., AuthServer],
) -> None:
    server = make_server(resource_url="http://localhost/mcp")
    create_user(server)
    client, _ = create_client(server, redirect_uris=["https://app.example.com/cb"])
    transport = httpx.ASGITransport(app=create_app(server))
    async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as http:
        for resource in ("http://localhost:80/mcp", "http://LocalHost/mcp"):
            location = await authorize_with_login(
                http, good(client.client_id, resource=resource), "alice", PASSWORD
            )
            assert code_row(server, location.params["code"]).resource == "http://localhost/mcp"
        response = await http.get(
            "/authorize", params=good(client.client_id, resource="http://localhost:8080/mcp")
        )
        redirected_error(response, "invalid_target")


async def test_s30_omitted_resource_gets_default(
    auth_server: AuthServer, as_client: httpx.AsyncClient, static_client: str
) -> None:
    create_user(auth_server)
    location = await authorize_with_login(as_client, good(static_client), "alice", PASSWORD)
    assert code_row(auth_server, location.params["code"]).resource == RESOURCE


async def test_s31_several_resources_rejected(
    as_client: httpx.AsyncClient, static_client: str
) -> None:
    for second in (RESOURCE, "https://other.example/mcp"):
        params = [*good(static_client).items(), ("resource", RESOURCE), ("resource", second)]
        redirected_error(await as_client.get("/authorize", params=params), "invalid_target")
