"""Security headers of the login, consent and error pages; 303 after form posts; no CORS
on ``/authorize`` (S8, S52, S53)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from authserver.context import AuthServer
from tests.support.browser_flow import authorize_params, parse_forms, pkce_pair
from tests.support.factories import create_client, create_user
from tests.support.pages import assert_no_third_party_resources, assert_page_headers

PASSWORD = "correct horse battery"
REDIRECT = "https://app.example.com/cb"


@pytest.fixture
def client_id(auth_server: AuthServer) -> str:
    create_user(auth_server)
    client, _ = create_client(auth_server, redirect_uris=[REDIRECT])
    return client.client_id


def params_for(client_id: str, **extra: Any) -> dict[str, Any]:
    return authorize_params(client_id, REDIRECT, pkce_pair()[1], **extra)


def fields_of(response: httpx.Response) -> tuple[str, dict[str, str]]:
    form = parse_forms(response.text)[0]
    return form.attrs["action"], dict(form.fields)


async def test_s52_login_consent_and_error_pages_headers(
    as_client: httpx.AsyncClient, client_id: str
) -> None:
    login = await as_client.get(
        "/authorize", params=params_for(client_id), headers={"Origin": "https://evil.example"}
    )
    assert_page_headers(login, "https://app.example.com")
    assert_no_third_party_resources(login.text)
    action, fields = fields_of(login)
    failed = await as_client.post(action, data={**fields, "username": "alice", "password": "no"})
    assert failed.status_code == 401
    assert_page_headers(failed, "https://app.example.com")
    posted = await as_client.post(
        action, data={**fields, "username": "alice", "password": PASSWORD}
    )
    consent = await as_client.get(posted.headers["location"])
    assert 'data-form="consent"' in consent.text
    assert_page_headers(consent, "https://app.example.com")
    assert_no_third_party_resources(consent.text)
    error = await as_client.get("/authorize", params=params_for("unknown-client"))
    assert error.status_code == 400
    assert_page_headers(error)
    assert_no_third_party_resources(error.text)


async def test_s52_redirects_carry_no_store_and_no_referrer(
    as_client: httpx.AsyncClient, client_id: str
) -> None:
    response = await as_client.get("/authorize", params=params_for(client_id, scope="bogus"))
    assert response.status_code == 302
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"


async def test_s52_loopback_and_app_scheme_redirects_allowed_by_form_action(
    auth_server: AuthServer, as_client: httpx.AsyncClient
) -> None:
    loopback, _ = create_client(auth_server, redirect_uris=["http://127.0.0.1/cb"])
    page = await as_client.get(
        "/authorize",
        params=authorize_params(loopback.client_id, "http://127.0.0.1:4567/cb", pkce_pair()[1]),
    )
    assert_page_headers(page, "http://127.0.0.1:4567")
    app, _ = create_client(auth_server, redirect_uris=["com.example.app:/oauth"])
    page = await as_client.get(
        "/authorize",
        params=authorize_params(app.client_id, "com.example.app:/oauth", pkce_pair()[1]),
    )
    assert_page_headers(page, "com.example.app:")


async def test_s8_no_cors_on_authorize(as_client: httpx.AsyncClient, client_id: str) -> None:
    headers = {"Origin": "https://evil.example"}
    response = await as_client.get("/authorize", params=params_for(client_id), headers=headers)
    assert not any(name.lower().startswith("access-control-") for name in response.headers)
    preflight = await as_client.options(
        "/authorize",
        headers={**headers, "Access-Control-Request-Method": "GET"},
    )
    assert preflight.status_code in (404, 405)
    assert not any(name.lower().startswith("access-control-") for name in preflight.headers)
    post = await as_client.post("/authorize/login", headers=headers, data={"x": "y"})
    assert not any(name.lower().startswith("access-control-") for name in post.headers)


async def test_s53_credential_posts_answer_303(
    as_client: httpx.AsyncClient, client_id: str
) -> None:
    login = await as_client.get("/authorize", params=params_for(client_id))
    action, fields = fields_of(login)
    posted = await as_client.post(
        action, data={**fields, "username": "alice", "password": PASSWORD}
    )
    assert posted.status_code == 303
    consent = await as_client.get(posted.headers["location"])
    action, fields = fields_of(consent)
    approved = await as_client.post(action, data={**fields, "decision": "approve"})
    assert approved.status_code == 303
    assert approved.headers["location"].startswith(REDIRECT + "?code=")
    # With consent remembered, the login POST itself goes to the client with a 303.
    as_client.cookies.delete("charter_session")
    login = await as_client.get("/authorize", params=params_for(client_id))
    action, fields = fields_of(login)
    posted = await as_client.post(
        action, data={**fields, "username": "alice", "password": PASSWORD}
    )
    assert posted.status_code == 303
    assert posted.headers["location"].startswith(REDIRECT + "?code=")


async def test_s53_deny_answers_303(as_client: httpx.AsyncClient, client_id: str) -> None:
    login = await as_client.get("/authorize", params=params_for(client_id))
    action, fields = fields_of(login)
    posted = await as_client.post(
        action, data={**fields, "username": "alice", "password": PASSWORD}
    )
    consent = await as_client.get(posted.headers["location"])
    action, fields = fields_of(consent)
    denied = await as_client.post(action, data={**fields, "decision": "deny"})
    assert denied.status_code == 303
    assert "error=access_denied" in denied.headers["location"]


async def test_form_posts_need_urlencoded_body(
    as_client: httpx.AsyncClient, client_id: str
) -> None:
    login = await as_client.get("/authorize", params=params_for(client_id))
    _, fields = fields_of(login)
    response = await as_client.post(
        "/authorize/login", json={**fields, "username": "alice", "password": PASSWORD}
    )
    assert response.status_code == 400
    assert "charter_session" not in response.headers.get("set-cookie", "")
