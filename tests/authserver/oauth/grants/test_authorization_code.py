"""Token endpoint, authorization code grant: PKCE, binding, replay, resource and scope (S12-S17,
S28-S31)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import select

from authserver.context import AuthServer
from authserver.storage.models import AccessToken, AuditEvent, Grant, RefreshToken
from tests.support.codes import code_form, create_code, new_verifier
from tests.support.factories import create_client, create_user

RESOURCE = "http://127.0.0.1:8000/mcp"


@pytest.fixture
def public_client(auth_server: AuthServer) -> str:
    client, _ = create_client(auth_server)
    return client.client_id


@pytest.fixture
def user_id(auth_server: AuthServer) -> str:
    return create_user(auth_server).id


def decode(server: AuthServer, token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    keys = KeySet.import_key_set(server.keys.jwks())  # type: ignore[arg-type]
    decoded = jwt.decode(token, keys, algorithms=["ES256"])
    return dict(decoded.header), dict(decoded.claims)


async def post(client: httpx.AsyncClient, form: dict[str, str], **kwargs: Any) -> httpx.Response:
    return await client.post("/token", data=form, **kwargs)


async def test_code_grant_issues_rfc9068_token(
    auth_server: AuthServer, as_client: httpx.AsyncClient, public_client: str, user_id: str
) -> None:
    issued = create_code(auth_server, client_id=public_client, subject=user_id)
    response = await post(as_client, code_form(issued))
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"
    assert response.headers["access-control-allow-origin"] == "*"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == auth_server.settings.access_token_ttl
    assert body["scope"] == "mcp"
    assert body["refresh_token"]
    header, claims = decode(auth_server, body["access_token"])
    assert header["typ"] == "at+jwt"
    assert header["alg"] == "ES256"
    assert header["kid"] == auth_server.keys.signing_key().kid
    assert claims["iss"] == auth_server.settings.issuer
    assert claims["sub"] == user_id
    assert claims["aud"] == RESOURCE
    assert claims["client_id"] == public_client
    assert claims["scope"] == "mcp"
    assert claims["exp"] - claims["iat"] == auth_server.settings.access_token_ttl
    with auth_server.database.transaction() as session:
        row = session.get(AccessToken, claims["jti"])
        assert row is not None and row.revoked_at is None
        grant = session.get(Grant, row.grant_id)
        assert grant is not None
        assert grant.subject == user_id and grant.resource == RESOURCE
        assert (
            grant.expires_at == grant.created_at + auth_server.settings.refresh_token_absolute_ttl
        )
        assert session.scalars(select(RefreshToken).where(RefreshToken.grant_id == grant.id)).one()


async def test_no_refresh_token_without_refresh_grant_type(
    auth_server: AuthServer, as_client: httpx.AsyncClient, user_id: str
) -> None:
    client, _ = create_client(auth_server, grant_types=["authorization_code"])
    issued = create_code(auth_server, client_id=client.client_id, subject=user_id)
    response = await post(as_client, code_form(issued))
    assert response.status_code == 200
    assert "refresh_token" not in response.json()


async def test_confidential_client_redeems_with_basic_and_post(
    auth_server: AuthServer, as_client: httpx.AsyncClient, user_id: str
) -> None:
    basic, basic_secret = create_client(auth_server, confidential=True)
    issued = create_code(auth_server, client_id=basic.client_id, subject=user_id)
    form = code_form(issued, client_id="")
    response = await post(as_client, form, auth=(basic.client_id, basic_secret or ""))
    assert response.status_code == 200, response.text

    poster, post_secret = create_client(
        auth_server, confidential=True, auth_method="client_secret_post"
    )
    issued = create_code(auth_server, client_id=poster.client_id, subject=user_id)
    response = await post(as_client, code_form(issued, client_secret=post_secret or ""))
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "verifier",
    ["a" * 42, "a" * 129, "a" * 42 + "+", "a" * 42 + " ", "a" * 42 + "/", "ä" * 43],
)
async def test_s12_malformed_verifier_is_invalid_request(
    auth_server: AuthServer,
    as_client: httpx.AsyncClient,
    public_client: str,
    user_id: str,
    verifier: str,
) -> None:
    issued = create_code(auth_server, client_id=public_client, subject=user_id)
    response = await post(as_client, code_form(issued, code_verifier=verifier))
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_s13_wrong_verifier_is_invalid_grant(
    auth_server: AuthServer, as_client: httpx.AsyncClient, public_client: str, user_id: str
) -> None:
    issued = create_code(auth_server, client_id=public_client, subject=user_id)
    response = await post(as_client, code_form(issued, code_verifier=new_verifier()))
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    # The right verifier still works: a failed attempt did not consume the code.
    assert (await post(as_client, code_form(issued))).status_code == 200


async def test_s14_pkce_downgrade_rejected(
    auth_server: AuthServer, as_client: httpx.AsyncClient, public_client: str, user_id: str
) -> None:
    without = create_code(
        auth_server, client_id=public_client, subject=user_id, with_challenge=False
    )
    response = await post(as_client, code_form(without))
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"

    plain = create_code(
        auth_server, client_id=public_client, subject=user_id, challenge_method="plain"
    )
    response = await post(as_client, code_form(plain))
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"

    with_challenge = create_code(auth_server, client_id=public_client, subject=user_id)
    response = await post(as_client, code_form(with_challenge, code_verifier=""))
    assert response.status_code == 400
    assert response.json()["error"] in ("invalid_request", "invalid_grant")


async def test_s15_code_replay_revokes_tokens(
    auth_server: AuthServer, as_client: httpx.AsyncClient, public_client: str, user_id: str
) -> None:
    issued = create_code(auth_server, client_id=public_client, subject=user_id)
    first = await post(as_client, code_form(issued))
    assert first.status_code == 200
    _, claims = decode(auth_server, first.json()["access_token"])

    replay = await post(as_client, code_form(issued))
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    with auth_server.database.transaction() as session:
        token_row = session.get(AccessToken, claims["jti"])
        assert token_row is not None and token_row.revoked_at is not None
        grant = session.get(Grant, token_row.grant_id)
        assert grant is not None and grant.revoked_reason == "code_replay"
        refresh = session.scalars(select(RefreshToken)).all()
        assert refresh and all(row.revoked_at is not None for row in refresh)
        events = session.scalars(select(AuditEvent.event)).all()
        assert "code_replay_detected" in events
    refresh_attempt = await post(
        as_client,
        {
            "grant_type": "refresh_token",
            "refresh_token": first.json()["refresh_token"],
            "client_id": public_client,
        },
    )
    assert refresh_attempt.json()["error"] == "invalid_grant"


async def test_s16_invalid_replay_does_not_revoke(
    auth_server: AuthServer, as_client: httpx.AsyncClient, public_client: str, user_id: str
) -> None:
    other, _ = create_client(auth_server)
    issued = create_code(auth_server, client_id=public_client, subject=user_id)
    first = await post(as_client, code_form(issued))
    assert first.status_code == 200
    _, claims = decode(auth_server, first.json()["access_token"])

    wrong_verifier = await post(as_client, code_form(issued, code_verifier=new_verifier()))
    wrong_client = await post(as_client, code_form(issued, client_id=other.client_id))
    wrong_redirect = await post(as_client, code_form(issued, redirect_uri="http://127.0.0.1/x"))
    for response in (wrong_verifier, wrong_client, wrong_redirect):
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_grant"
    with auth_server.database.transaction() as session:
        row = session.get(AccessToken, claims["jti"])
        assert row is not None and row.revoked_at is None
        grant = session.get(Grant, row.grant_id)
        assert grant is not None and grant.revoked_at is None


async def test_s17_code_bound_to_client_redirect_and_lifetime(
    make_server: Any, user_id: str
) -> None:
    from authserver.endpoints.app import create_app
    from tests.support.clock import Clock

    clock = Clock()
    server: AuthServer = make_server(clock=clock)
    client, _ = create_client(
        server, redirect_uris=["http://127.0.0.1/callback", "http://127.0.0.1/b"]
    )
    other, _ = create_client(server)
    transport = httpx.ASGITransport(app=create_app(server))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as http:
        issued = create_code(server, client_id=client.client_id, subject=user_id)
        for form in (
            code_form(issued, client_id=other.client_id),
            code_form(issued, redirect_uri="http://127.0.0.1/b"),
            code_form(issued, redirect_uri="http://127.0.0.1/callback/"),
            code_form(issued, redirect_uri=""),
        ):
            response = await post(http, form)
            assert response.status_code == 400, form
            assert response.json()["error"] == "invalid_grant"
        clock.advance(server.settings.authorization_code_ttl + 1)
        response = await post(http, code_form(issued))
        assert response.json()["error"] == "invalid_grant"
        assert response.status_code == 400

        # redirect_uri not sent at /authorize: it may be omitted here too.
        unsent = create_code(
            server, client_id=client.client_id, subject=user_id, redirect_uri_sent=False
        )
        response = await post(http, code_form(unsent, redirect_uri=""))
        assert response.status_code == 200, response.text


async def test_unknown_code_is_invalid_grant(
    as_client: httpx.AsyncClient, public_client: str
) -> None:
    response = await post(
        as_client,
        {
            "grant_type": "authorization_code",
            "code": "nope",
            "code_verifier": new_verifier(),
            "client_id": public_client,
            "redirect_uri": "http://127.0.0.1/callback",
        },
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


async def test_s28_aud_is_canonical_resource_and_bad_resource_is_invalid_target(
    auth_server: AuthServer, as_client: httpx.AsyncClient, public_client: str, user_id: str
) -> None:
    issued = create_code(auth_server, client_id=public_client, subject=user_id)
    for bad in ("/mcp", "http://127.0.0.1:8000/mcp#frag", "https://evil.example/mcp", "urn:x"):
        response = await post(as_client, code_form(issued, resource=bad))
        assert response.status_code == 400, bad
        assert response.json()["error"] == "invalid_target"
    response = await post(as_client, code_form(issued, resource="HTTP://127.0.0.1:8000/mcp"))
    assert response.status_code == 200, response.text
    _, claims = decode(auth_server, response.json()["access_token"])
    assert claims["aud"] == RESOURCE


async def test_s29_resource_compared_canonically_never_by_prefix(
    make_server: Any, user_id: str
) -> None:
    from authserver.endpoints.app import create_app

    server: AuthServer = make_server(resource_url="https://mcp.example.com/mcp")
    client, _ = create_client(server)
    transport = httpx.ASGITransport(app=create_app(server))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as http:
        issued = create_code(server, client_id=client.client_id, subject=user_id)
        for bad in (
            "https://mcp.example.com/mcp/extra",
            "https://mcp.example.com/mc",
            "https://mcp.example.com.evil/mcp",
            "https://mcp.example.com:8443/mcp",
        ):
            response = await post(http, code_form(issued, resource=bad))
            assert response.json()["error"] == "invalid_target", bad
        response = await post(http, code_form(issued, resource="https://MCP.example.com:443/mcp"))
        assert response.status_code == 200, response.text
        _, claims = decode(server, response.json()["access_token"])
        assert claims["aud"] == "https://mcp.example.com/mcp"


async def test_s30_omitted_resource_gets_default_audience(
    auth_server: AuthServer, as_client: httpx.AsyncClient, public_client: str, user_id: str
) -> None:
    issued = create_code(auth_server, client_id=public_client, subject=user_id)
    response = await post(as_client, code_form(issued))
    _, claims = decode(auth_server, response.json()["access_token"])
    assert claims["aud"] == RESOURCE


async def test_s31_several_or_inconsistent_resources_rejected(
    auth_server: AuthServer, as_client: httpx.AsyncClient, public_client: str, user_id: str
) -> None:
    issued = create_code(auth_server, client_id=public_client, subject=user_id)
    for extra in (RESOURCE, "http://127.0.0.1:8000/other"):
        form = [*code_form(issued).items(), ("resource", RESOURCE), ("resource", extra)]
        response = await as_client.post(
            "/token",
            content=urlencode(form),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_target"
    # The code row says another resource (e.g. settings changed): the request may not widen.
    other = create_code(
        auth_server,
        client_id=public_client,
        subject=user_id,
        resource="http://127.0.0.1:8000/other",
    )
    response = await post(as_client, code_form(other, resource=RESOURCE))
    assert response.json()["error"] == "invalid_target"


async def test_scope_may_only_narrow_on_code_redemption(
    auth_server: AuthServer, as_client: httpx.AsyncClient, public_client: str, user_id: str
) -> None:
    issued = create_code(
        auth_server, client_id=public_client, subject=user_id, scope="mcp notes:read"
    )
    response = await post(as_client, code_form(issued, scope="mcp notes:write"))
    assert response.json()["error"] == "invalid_scope"
    response = await post(as_client, code_form(issued, scope="notes:read"))
    assert response.status_code == 200
    assert response.json()["scope"] == "notes:read"
    _, claims = decode(auth_server, response.json()["access_token"])
    assert claims["scope"] == "notes:read"


def test_s30_no_access_token_without_audience(auth_server: AuthServer) -> None:
    from authserver.oauth.tokens import issue_access_token

    key = auth_server.keys.signing_key()
    with pytest.raises(ValueError, match="audience"):
        with auth_server.database.transaction() as session:
            issue_access_token(
                auth_server,
                session,
                key,
                grant_id=None,
                client_id="c",
                subject="s",
                scope="mcp",
                resource="",
                now=auth_server.now(),
            )


@pytest.mark.parametrize(
    "form",
    [
        {"grant_type": "pässword"},
        {"grant_type": "authorization_code", "client_id": "é" * 3000},
        {"grant_type": "authorization_code", "client_id": "x", "code": "\x00\xff"},
        {"grant_type": "refresh_token", "client_id": "x", "refresh_token": "a.b.c"},
        {"grant_type": "refresh_token", "client_id": "x", "refresh_token": "ü" * 10_000},
        {"grant_type": "client_credentials", "client_id": "x", "client_secret": "\ud7ff"},
        {"grant_type": "authorization_code", "client_id": "x", "resource": "http://[::1"},
        {"grant_type": "", "client_id": "x"},
    ],
)
async def test_hostile_token_requests_never_500(
    as_client: httpx.AsyncClient, public_client: str, form: dict[str, str]
) -> None:
    response = await as_client.post("/token", data=form)
    assert response.status_code in (400, 401), response.text
    assert response.json()["error"]
    known = {**form, "client_id": public_client} if "client_id" in form else form
    response = await as_client.post("/token", data=known)
    assert response.status_code in (400, 401), response.text


async def test_code_exchange_stores_grant_tokens_and_one_audit_event(
    auth_server: AuthServer,
    as_client: httpx.AsyncClient,
    public_client: str,
    user_id: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every row the exchange makes (on PostgreSQL all in one statement) is there and
    consistent, and its ``grant_created`` event is stored and logged once."""
    issued = create_code(auth_server, client_id=public_client, subject=user_id, scope="mcp")
    with caplog.at_level("INFO", logger="charter.audit"):
        response = await post(as_client, code_form(issued, scope="mcp"))
    assert response.status_code == 200, response.text
    body = response.json()
    _, claims = decode(auth_server, body["access_token"])
    with auth_server.database.transaction() as session:
        access = session.get(AccessToken, claims["jti"])
        assert access is not None and access.revoked_at is None
        grant = session.get(Grant, access.grant_id)
        assert grant is not None
        assert (grant.client_id, grant.subject, grant.grant_type) == (
            public_client,
            user_id,
            "authorization_code",
        )
        assert (access.client_id, access.subject, access.scope) == (public_client, user_id, "mcp")
        assert access.expires_at == claims["exp"]
        [refresh] = session.scalars(select(RefreshToken)).all()
        assert refresh.grant_id == grant.id and refresh.rotated_at is None
        assert refresh.expires_at <= grant.expires_at
        [event] = session.scalars(
            select(AuditEvent).where(AuditEvent.event == "grant_created")
        ).all()
        assert (event.client_id, event.subject) == (public_client, user_id)
        assert event.detail == {"grant_id": grant.id}
    logged = [r for r in caplog.records if r.getMessage().startswith("grant_created")]
    assert len(logged) == 1
    assert grant.id in logged[0].getMessage()
