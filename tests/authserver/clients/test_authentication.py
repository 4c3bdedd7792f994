"""Token endpoint request rules and client authentication (S19-S22)."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from authserver.context import AuthServer
from authserver.storage.models import User
from tests.support.clock import Clock
from tests.support.codes import code_form, create_code
from tests.support.factories import create_client, create_user

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def claims_of(server: AuthServer, token: str) -> dict[str, Any]:
    keys = KeySet.import_key_set(server.keys.jwks())  # type: ignore[arg-type]
    return dict(jwt.decode(token, keys, algorithms=["ES256"]).claims)


async def test_s19_token_endpoint_is_post_form_only_and_no_store(
    auth_server: AuthServer, as_client: httpx.AsyncClient
) -> None:
    client, secret = create_client(
        auth_server, confidential=True, grant_types=["client_credentials"]
    )
    assert secret is not None
    get = await as_client.get("/token", params={"grant_type": "client_credentials"})
    assert get.status_code in (400, 405)
    assert get.headers["cache-control"] == "no-store"

    as_json = await as_client.post(
        "/token", json={"grant_type": "client_credentials"}, headers=basic(client.client_id, secret)
    )
    assert as_json.status_code == 400
    assert as_json.json()["error"] == "invalid_request"

    in_query = await as_client.post(
        "/token",
        params={"client_secret": secret},
        data={"grant_type": "client_credentials", "client_id": client.client_id},
    )
    assert in_query.status_code == 400
    assert in_query.json()["error"] == "invalid_request"

    duplicated = await as_client.post(
        "/token",
        content="grant_type=client_credentials&grant_type=client_credentials",
        headers={**FORM, **basic(client.client_id, secret)},
    )
    assert duplicated.status_code == 400
    assert duplicated.json()["error"] == "invalid_request"

    missing = await as_client.post("/token", data={}, headers=basic(client.client_id, secret))
    assert missing.json()["error"] == "invalid_request"
    unsupported = await as_client.post(
        "/token", data={"grant_type": "password"}, headers=basic(client.client_id, secret)
    )
    assert unsupported.json()["error"] == "unsupported_grant_type"

    bad_basic = await as_client.post(
        "/token",
        data={"grant_type": "client_credentials"},
        headers=basic(client.client_id, "wrong"),
    )
    assert bad_basic.status_code == 401
    assert bad_basic.json()["error"] == "invalid_client"
    assert bad_basic.headers["www-authenticate"].startswith("Basic")
    bad_post = await as_client.post(
        "/token",
        data={
            "grant_type": "client_credentials",
            "client_id": client.client_id,
            "client_secret": "x",
        },
    )
    assert bad_post.status_code == 401
    assert "www-authenticate" not in bad_post.headers

    for response in (get, as_json, in_query, duplicated, missing, unsupported, bad_basic, bad_post):
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["pragma"] == "no-cache"

    ok = await as_client.post(
        "/token", data={"grant_type": "client_credentials"}, headers=basic(client.client_id, secret)
    )
    assert ok.status_code == 200, ok.text
    assert ok.headers["cache-control"] == "no-store"
    assert "refresh_token" not in ok.json()

    preflight = await as_client.options(
        "/token", headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    )
    assert preflight.headers["access-control-allow-origin"] == "*"


async def test_s20_unknown_and_known_clients_answer_alike_and_wrong_secrets_throttle(
    make_server: Any,
) -> None:
    from authserver.endpoints.app import create_app

    server: AuthServer = make_server(clock=Clock(), failed_auth_limit=3)
    client, secret = create_client(server, confidential=True, grant_types=["client_credentials"])
    assert secret is not None
    transport = httpx.ASGITransport(app=create_app(server))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as http:
        form = {"grant_type": "client_credentials"}
        known = await http.post("/token", data=form, headers=basic(client.client_id, "wrong"))
        unknown = await http.post("/token", data=form, headers=basic("no-such-client", "wrong"))
        assert known.status_code == unknown.status_code == 401
        assert known.json() == unknown.json()
        assert known.headers["www-authenticate"] == unknown.headers["www-authenticate"]

        for _ in range(3):
            await http.post("/token", data=form, headers=basic(client.client_id, "wrong"))
        throttled = await http.post("/token", data=form, headers=basic(client.client_id, "bad"))
        assert throttled.status_code == 429
        assert int(throttled.headers["retry-after"]) > 0
        unknown_throttled = await http.post("/token", data=form, headers=basic("nobody", "bad"))
        assert unknown_throttled.status_code == 401  # its own counter
        # The real client, which knows its secret, is not locked out by others' guesses.
        granted = await http.post("/token", data=form, headers=basic(client.client_id, secret))
        assert granted.status_code == 200, granted.text
        still = await http.post("/token", data=form, headers=basic(client.client_id, "bad"))
        assert still.status_code == 429
        # Another client is not affected.
        other, other_secret = create_client(
            server, confidential=True, grant_types=["client_credentials"]
        )
        fine = await http.post(
            "/token", data=form, headers=basic(other.client_id, other_secret or "")
        )
        assert fine.status_code == 200


def test_s20_secret_comparison_is_constant_time() -> None:
    import inspect

    from authserver.clients import authentication
    from authserver.storage import crypto

    assert "token_matches" in inspect.getsource(authentication.authenticate_client)
    assert "compare_digest" in inspect.getsource(crypto.token_matches)


async def test_s21_confidential_clients_must_authenticate(
    auth_server: AuthServer, as_client: httpx.AsyncClient
) -> None:
    user = create_user(auth_server)
    client, secret = create_client(auth_server, confidential=True)
    issued = create_code(auth_server, client_id=client.client_id, subject=user.id)
    response = await as_client.post("/token", data=code_form(issued))  # only client_id
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    # Wrong method (post for a basic client) is refused as well.
    response = await as_client.post("/token", data=code_form(issued, client_secret=secret or ""))
    assert response.status_code == 401
    ok = await as_client.post(
        "/token",
        data=code_form(issued, client_id=""),
        headers=basic(client.client_id, secret or ""),
    )
    assert ok.status_code == 200, ok.text
    refresh = ok.json()["refresh_token"]
    unauthenticated = await as_client.post(
        "/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": refresh,
            "client_id": client.client_id,
        },
    )
    assert unauthenticated.status_code == 401
    authenticated = await as_client.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh},
        headers=basic(client.client_id, secret or ""),
    )
    assert authenticated.status_code == 200, authenticated.text


async def test_s22_client_sub_cannot_collide_with_a_user(
    auth_server: AuthServer, as_client: httpx.AsyncClient
) -> None:
    user = create_user(auth_server)
    # A (static, admin-made) client whose id equals the user's id cannot get a token with sub=user.
    colliding, secret = create_client(
        auth_server, client_id=user.id, confidential=True, grant_types=["client_credentials"]
    )
    response = await as_client.post(
        "/token", data={"grant_type": "client_credentials"}, headers=basic(user.id, secret or "")
    )
    assert response.status_code == 400
    assert response.json()["error"] == "unauthorized_client"

    client, secret = create_client(
        auth_server, confidential=True, grant_types=["client_credentials"]
    )
    response = await as_client.post(
        "/token",
        data={"grant_type": "client_credentials"},
        headers=basic(client.client_id, secret or ""),
    )
    claims = claims_of(auth_server, response.json()["access_token"])
    assert claims["sub"] == client.client_id == claims["client_id"]
    with auth_server.database.transaction() as session:
        assert session.get(User, claims["sub"]) is None
    assert colliding.client_id == user.id
    # A client named like a username is refused too (usernames are chosen freely).
    named, named_secret = create_client(
        auth_server, client_id="alice", confidential=True, grant_types=["client_credentials"]
    )
    response = await as_client.post(
        "/token",
        data={"grant_type": "client_credentials"},
        headers=basic(named.client_id, named_secret or ""),
    )
    assert response.json()["error"] == "unauthorized_client"


async def test_token_issuance_marks_client_used(
    auth_server: AuthServer, as_client: httpx.AsyncClient
) -> None:
    from authserver.storage.models import Client

    client, secret = create_client(
        auth_server, confidential=True, grant_types=["client_credentials"]
    )
    before = auth_server.now()
    response = await as_client.post(
        "/token",
        data={"grant_type": "client_credentials"},
        headers=basic(client.client_id, secret or ""),
    )
    after = auth_server.now()
    assert response.status_code == 200
    with auth_server.database.transaction() as session:
        row = session.get(Client, client.client_id)
        # The clock may tick between the request and the check: the stamp lies between them.
        assert row is not None and row.last_used_at is not None
        assert before <= row.last_used_at <= after


async def test_oversized_body_is_invalid_request(as_client: httpx.AsyncClient) -> None:
    response = await as_client.post(
        "/token", data={"grant_type": "client_credentials", "pad": "x" * 70_000}
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_public_client_cannot_use_client_credentials(
    auth_server: AuthServer, as_client: httpx.AsyncClient
) -> None:
    client, _ = create_client(auth_server, grant_types=["client_credentials"])
    response = await as_client.post(
        "/token", data={"grant_type": "client_credentials", "client_id": client.client_id}
    )
    assert response.status_code in (400, 401)
    assert response.json()["error"] in ("unauthorized_client", "invalid_client")


async def test_client_credentials_only_for_static_clients(
    auth_server: AuthServer, as_client: httpx.AsyncClient
) -> None:
    """A self-registered row that lists client_credentials (made before registration
    refused it) still gets no token: the grant is for administrator-made clients only."""
    client, secret = create_client(
        auth_server, confidential=True, grant_types=["client_credentials"], kind="dynamic"
    )
    response = await as_client.post(
        "/token",
        data={"grant_type": "client_credentials", "scope": "mcp"},
        headers=basic(client.client_id, secret or ""),
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "unauthorized_client"


async def test_client_credentials_grant_type_must_be_registered(
    auth_server: AuthServer, as_client: httpx.AsyncClient
) -> None:
    client, secret = create_client(auth_server, confidential=True)
    response = await as_client.post(
        "/token",
        data={"grant_type": "client_credentials"},
        headers=basic(client.client_id, secret or ""),
    )
    assert response.json()["error"] == "unauthorized_client"


async def test_client_credentials_scope_and_resource(
    auth_server: AuthServer, as_client: httpx.AsyncClient
) -> None:
    client, secret = create_client(
        auth_server, confidential=True, grant_types=["client_credentials"], scope="mcp notes:read"
    )
    auth = basic(client.client_id, secret or "")
    response = await as_client.post(
        "/token", data={"grant_type": "client_credentials", "scope": "notes:write"}, headers=auth
    )
    assert response.json()["error"] == "invalid_scope"
    response = await as_client.post(
        "/token",
        data={"grant_type": "client_credentials", "resource": "https://other.example/mcp"},
        headers=auth,
    )
    assert response.json()["error"] == "invalid_target"
    response = await as_client.post(
        "/token", data={"grant_type": "client_credentials", "scope": "notes:read"}, headers=auth
    )
    assert response.status_code == 200
    claims = claims_of(auth_server, response.json()["access_token"])
    assert claims["scope"] == "notes:read"
    assert claims["aud"] == "http://127.0.0.1:8000/mcp"


@pytest.mark.parametrize("header", ["Basic !!!", "Basic " + base64.b64encode(b"nocolon").decode()])
async def test_malformed_basic_is_invalid_client(as_client: httpx.AsyncClient, header: str) -> None:
    response = await as_client.post(
        "/token", data={"grant_type": "client_credentials"}, headers={"Authorization": header}
    )
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Basic")


async def test_unknown_public_client_is_401_invalid_client(as_client: httpx.AsyncClient) -> None:
    response = await as_client.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": "x",
            "client_id": "forgotten",
            "code_verifier": "a" * 43,
        },
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
