"""Consent: CSRF, binding, cookies, remembered consent and what the page shows (S51, S53-S55)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from authserver.context import AuthServer
from authserver.endpoints.app import create_app
from authserver.storage.models import AuditEvent, Consent
from tests.support.browser_flow import (
    authorize_params,
    authorize_with_login,
    parse_forms,
    pkce_pair,
)
from tests.support.factories import create_client, create_user

PASSWORD = "correct horse battery"
ISSUER = "http://127.0.0.1:8000"
REDIRECT = "https://app.example.com/cb"


def params_for(client_id: str, redirect_uri: str = REDIRECT, **extra: Any) -> dict[str, Any]:
    return authorize_params(client_id, redirect_uri, pkce_pair()[1], **extra)


def form_of(response: httpx.Response, kind: str) -> tuple[str, dict[str, str]]:
    assert response.status_code == 200, response.text
    forms = [form for form in parse_forms(response.text) if form.attrs.get("data-form") == kind]
    assert len(forms) == 1, f"no {kind} form"
    return forms[0].attrs["action"], dict(forms[0].fields)


async def post_form(client: httpx.AsyncClient, action: str, data: dict[str, str]) -> httpx.Response:
    return await client.post(action, data=data)


async def open_consent(
    client: httpx.AsyncClient, params: dict[str, Any], username: str = "alice"
) -> httpx.Response:
    """GET /authorize, log in, follow to the consent page."""
    page = await client.get("/authorize", params=params)
    action, fields = form_of(page, "login")
    response = await post_form(
        client, action, {**fields, "username": username, "password": PASSWORD}
    )
    assert response.status_code == 303, response.text
    return await client.get(response.headers["location"])


@pytest.fixture
def client_id(auth_server: AuthServer) -> str:
    create_user(auth_server)
    create_user(auth_server, "bob")
    client, _ = create_client(auth_server, redirect_uris=[REDIRECT, "https://app.example.com/cb2"])
    return client.client_id


@pytest.fixture
async def second_browser(auth_server: AuthServer) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(auth_server))
    async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as client:
        yield client


async def test_s51_consent_requires_csrf_token(
    as_client: httpx.AsyncClient, client_id: str
) -> None:
    consent = await open_consent(as_client, params_for(client_id))
    action, fields = form_of(consent, "consent")
    for bad in ("", "x" * 43, fields["csrf_token"][:-1]):
        response = await post_form(
            as_client, action, {**fields, "csrf_token": bad, "decision": "approve"}
        )
        assert response.status_code == 403
        assert "location" not in response.headers
    without = {key: value for key, value in fields.items() if key != "csrf_token"}
    response = await post_form(as_client, action, {**without, "decision": "approve"})
    assert response.status_code == 403
    # The genuine token still works afterwards.
    response = await post_form(as_client, action, {**fields, "decision": "approve"})
    assert response.status_code == 303
    assert httpx.URL(response.headers["location"]).params["code"]


async def test_s51_login_requires_csrf_token(
    auth_server: AuthServer, as_client: httpx.AsyncClient, client_id: str
) -> None:
    page = await as_client.get("/authorize", params=params_for(client_id))
    action, fields = form_of(page, "login")
    data = {**fields, "csrf_token": "forged", "username": "alice", "password": PASSWORD}
    response = await post_form(as_client, action, data)
    assert response.status_code == 403
    assert "charter_session" not in response.headers.get("set-cookie", "")
    # A CSRF token of another pending request does not fit this one.
    other = await as_client.get("/authorize", params=params_for(client_id))
    _, other_fields = form_of(other, "login")
    data = {
        **fields,
        "csrf_token": other_fields["csrf_token"],
        "username": "alice",
        "password": PASSWORD,
    }
    assert (await post_form(as_client, action, data)).status_code == 403


async def test_s51_forms_bound_to_the_browser_that_started(
    as_client: httpx.AsyncClient, second_browser: httpx.AsyncClient, client_id: str
) -> None:
    page = await as_client.get("/authorize", params=params_for(client_id))
    action, fields = form_of(page, "login")
    # Login CSRF: the attacker's pending request, posted from the victim's browser.
    response = await post_form(
        second_browser, action, {**fields, "username": "alice", "password": PASSWORD}
    )
    assert response.status_code == 400
    assert "charter_session" not in response.headers.get("set-cookie", "")


async def test_s51_consent_bound_to_login_session(
    as_client: httpx.AsyncClient, client_id: str
) -> None:
    consent = await open_consent(as_client, params_for(client_id))
    action, fields = form_of(consent, "consent")
    # The browser logs in as someone else in between: the old consent form is void.
    await open_consent(as_client, params_for(client_id, prompt="login"), username="bob")
    response = await post_form(as_client, action, {**fields, "decision": "approve"})
    assert response.status_code == 403


async def test_s51_consent_bound_to_user_client_scope_redirect_and_resource(
    auth_server: AuthServer,
    as_client: httpx.AsyncClient,
    second_browser: httpx.AsyncClient,
    client_id: str,
) -> None:
    await authorize_with_login(
        as_client, params_for(client_id, scope="mcp notes:read"), "alice", PASSWORD
    )
    with auth_server.database.transaction() as session:
        consent = session.scalars(select(Consent)).one()
    assert consent.client_id == client_id
    assert consent.scope == "mcp notes:read"
    assert consent.redirect_uri == REDIRECT
    assert consent.resource == "http://127.0.0.1:8000/mcp"
    assert consent.expires_at - consent.created_at == auth_server.settings.consent_ttl

    async def skips(params: dict[str, Any]) -> bool:
        response = await as_client.get("/authorize", params=params)
        return response.status_code == 302 and "code=" in response.headers["location"]

    assert await skips(params_for(client_id, scope="mcp notes:read"))
    assert await skips(params_for(client_id, scope="notes:read"))  # a subset
    assert not await skips(params_for(client_id, scope="mcp notes:write"))
    assert not await skips(params_for(client_id, "https://app.example.com/cb2", scope="mcp"))
    # Another user in another browser is asked.
    consent_page = await open_consent(second_browser, params_for(client_id, scope="mcp"), "bob")
    assert 'data-form="consent"' in consent_page.text


async def test_s51_consent_bound_to_resource(
    make_server: Callable[..., AuthServer],
) -> None:
    server = make_server()
    create_user(server)
    client, _ = create_client(server, redirect_uris=[REDIRECT])
    transport = httpx.ASGITransport(app=create_app(server))
    async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as http:
        await authorize_with_login(http, params_for(client.client_id), "alice", PASSWORD)
        assert (
            await http.get("/authorize", params=params_for(client.client_id))
        ).status_code == 302
        with server.database.transaction() as session:
            row = session.scalars(select(Consent)).one()
            row.resource = "http://127.0.0.1:8000/other"
        response = await http.get("/authorize", params=params_for(client.client_id))
        assert response.status_code == 200
        assert 'data-form="consent"' in response.text


@pytest.mark.parametrize(
    ("issuer", "prefix", "secure"),
    [("https://as.example.com", "__Host-", True), ("http://127.0.0.1:8000", "", False)],
)
async def test_s51_cookie_flags(
    make_server: Callable[..., AuthServer], issuer: str, prefix: str, secure: bool
) -> None:
    server = make_server(issuer=issuer)
    create_user(server)
    client, _ = create_client(server, redirect_uris=[REDIRECT])
    transport = httpx.ASGITransport(app=create_app(server))
    async with httpx.AsyncClient(transport=transport, base_url=issuer) as http:
        page = await http.get("/authorize", params=params_for(client.client_id))
        action, fields = form_of(page, "login")
        response = await post_form(
            http, action, {**fields, "username": "alice", "password": PASSWORD}
        )
        assert response.status_code == 303
        cookies = {
            header.split("=", 1)[0]: header
            for header in page.headers.get_list("set-cookie")
            + response.headers.get_list("set-cookie")
        }
        assert set(cookies) == {f"{prefix}charter_browser", f"{prefix}charter_session"}
        for header in cookies.values():
            attributes = {part.strip().split("=")[0].lower() for part in header.split(";")[1:]}
            assert {"httponly", "path", "samesite", "max-age"} <= attributes
            assert "Path=/" in header
            assert "SameSite=lax" in header or "SameSite=Lax" in header
            assert ("secure" in attributes) is secure
            assert "domain" not in attributes
        location = await authorize_with_login(http, params_for(client.client_id), "alice", PASSWORD)
        assert location.params["iss"] == issuer


async def test_s51_deny_redirects_access_denied(
    auth_server: AuthServer, as_client: httpx.AsyncClient, client_id: str
) -> None:
    params = params_for(client_id, state="deny-me")
    location = await authorize_with_login(as_client, params, "alice", PASSWORD, approve=False)
    assert location.params["error"] == "access_denied"
    assert location.params["state"] == "deny-me"
    assert location.params["iss"] == ISSUER
    assert "code" not in location.params
    with auth_server.database.transaction() as session:
        assert session.scalars(select(Consent)).all() == []
        events = session.scalars(select(AuditEvent.event)).all()
    assert "consent_denied" in events


async def test_s54_every_new_client_gets_its_own_consent(
    auth_server: AuthServer, as_client: httpx.AsyncClient, client_id: str
) -> None:
    await authorize_with_login(as_client, params_for(client_id), "alice", PASSWORD)
    remembered = await as_client.get("/authorize", params=params_for(client_id))
    assert remembered.status_code == 302
    twin, _ = create_client(auth_server, redirect_uris=[REDIRECT], client_name="Test Client")
    response = await as_client.get("/authorize", params=params_for(twin.client_id))
    assert response.status_code == 200
    assert 'data-form="consent"' in response.text


async def test_s54_consent_ttl_zero_always_asks(make_server: Callable[..., AuthServer]) -> None:
    server = make_server(consent_ttl=0)
    create_user(server)
    client, _ = create_client(server, redirect_uris=[REDIRECT])
    transport = httpx.ASGITransport(app=create_app(server))
    async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as http:
        await authorize_with_login(http, params_for(client.client_id), "alice", PASSWORD)
        response = await http.get("/authorize", params=params_for(client.client_id))
        assert 'data-form="consent"' in response.text


async def test_s55_hostile_client_name_escaped_and_redirect_host_shown(
    auth_server: AuthServer, as_client: httpx.AsyncClient
) -> None:
    create_user(auth_server)
    hostile = "<script>alert(1)</script><img src=x onerror=alert(2)>\"'"
    client, _ = create_client(
        auth_server,
        redirect_uris=["https://callback.example.net/oauth"],
        client_name=hostile,
        logo_uri="https://tracker.example/logo.png",
    )
    params = params_for(client.client_id, "https://callback.example.net/oauth")
    login_page = await as_client.get("/authorize", params=params)
    consent = await open_consent(as_client, params)
    for page in (login_page, consent):
        assert "<script>alert(1)</script>" not in page.text
        assert "<img" not in page.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
        assert "tracker.example" not in page.text
    assert "callback.example.net" in consent.text
    assert "Use the tools, resources and prompts" in consent.text  # human scope description
    assert "http://127.0.0.1:8000/mcp" in consent.text  # the resource
    assert 'role="alert"' not in consent.text  # not localhost-only: no warning


async def test_s55_localhost_only_client_warned(
    auth_server: AuthServer, as_client: httpx.AsyncClient
) -> None:
    create_user(auth_server)
    client, _ = create_client(
        auth_server, redirect_uris=["http://127.0.0.1/callback", "http://localhost/callback"]
    )
    consent = await open_consent(
        as_client, params_for(client.client_id, "http://127.0.0.1:33333/callback")
    )
    assert 'data-form="consent"' in consent.text
    assert "only runs on your own computer" in consent.text
    assert "127.0.0.1" in consent.text


@pytest.mark.parametrize(
    "others",
    [["https://app.example.com/cb"], ["com.example.app:/oauth"]],
    ids=["https", "private-use-scheme"],
)
async def test_s55_localhost_warning_only_when_every_redirect_is_loopback(
    auth_server: AuthServer, as_client: httpx.AsyncClient, others: list[str]
) -> None:
    """A client that also redirects elsewhere is not a local-only application: the page
    names where it sends the browser but does not warn about localhost (issue 13)."""
    create_user(auth_server)
    client, _ = create_client(
        auth_server, redirect_uris=["http://127.0.0.1/callback", "http://[::1]/cb", *others]
    )
    consent = await open_consent(
        as_client, params_for(client.client_id, "http://127.0.0.1:33333/callback")
    )
    assert 'data-form="consent"' in consent.text
    assert "only runs on your own computer" not in consent.text
    assert 'role="alert"' not in consent.text
    assert "127.0.0.1" in consent.text
