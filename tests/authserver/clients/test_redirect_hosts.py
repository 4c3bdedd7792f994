"""S101: a redirect URI's host must be a valid host name (RFC 3986 §3.2.2, RFC 1123 §2.1), an
internationalised one only in its ASCII (punycode) form (RFC 5890 §2.3.2.1); and no stored value,
even one written before this rule, can break or extend a response header (the page CSP)."""

from __future__ import annotations

import httpx
import pytest

from authserver.context import AuthServer
from tests.support.browser_flow import authorize_params, pkce_pair
from tests.support.factories import create_client
from tests.support.pages import assert_page_headers

BASE = {
    "client_name": "App",
    "grant_types": ["authorization_code", "refresh_token"],
    "token_endpoint_auth_method": "none",
}
BAD_HOSTS = [
    "https://例え.jp/cb",
    "https://app\u2028.example/cb",
    "https://app.example;sandbox/cb",
    "https://app.example;script-src%20*/cb",
    "https://app.example,evil.example/cb",
    "https://-app.example/cb",
    "https://app..example/cb",
    "https://app_x.example/cb",
    "https://" + "a" * 64 + ".example/cb",
    "https://app.example.com/c\u2028b",
    "https://app.example.com/cb?x=\u202e",
]
GOOD_HOSTS = [
    "https://xn--r8jz45g.jp/cb",
    "https://App.Example.com:8443/cb",
    "https://203.0.113.7/cb",
    "https://[2001:db8::1]/cb",
    "https://app.example.com./cb",
]
DIRECTIVES = {"default-src", "style-src", "form-action", "frame-ancestors", "base-uri"}


@pytest.mark.parametrize("uri", BAD_HOSTS)
async def test_s101_registration_refuses_invalid_redirect_hosts(
    as_client: httpx.AsyncClient, uri: str
) -> None:
    response = await as_client.post("/register", json={**BASE, "redirect_uris": [uri]})
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_redirect_uri"


@pytest.mark.parametrize("uri", GOOD_HOSTS)
async def test_s101_registration_accepts_valid_hosts_and_punycode(
    as_client: httpx.AsyncClient, uri: str
) -> None:
    response = await as_client.post("/register", json={**BASE, "redirect_uris": [uri]})
    assert response.status_code == 201, response.text
    assert response.json()["redirect_uris"] == [uri]


@pytest.mark.parametrize("uri", BAD_HOSTS[:5])
async def test_s101_stored_invalid_host_cannot_break_the_csp_header(
    auth_server: AuthServer, as_client: httpx.AsyncClient, uri: str
) -> None:
    """A row written before the rule (or straight to the database): never a 500, never an extra
    CSP directive; the URI is not used as a redirect."""
    client, _ = create_client(auth_server, redirect_uris=[uri])
    response = await as_client.get(
        "/authorize", params=authorize_params(client.client_id, uri, pkce_pair()[1])
    )
    assert response.status_code == 400
    assert "location" not in response.headers
    assert_page_headers(response)
    csp = response.headers["content-security-policy"]
    names = {part.split()[0] for part in csp.split(";") if part.strip()}
    assert names == DIRECTIVES
    assert "sandbox" not in csp and "evil" not in csp


async def test_s101_punycode_host_gives_its_origin_to_form_action(
    auth_server: AuthServer, as_client: httpx.AsyncClient
) -> None:
    uri = "https://xn--r8jz45g.jp/cb"
    client, _ = create_client(auth_server, redirect_uris=[uri])
    response = await as_client.get(
        "/authorize", params=authorize_params(client.client_id, uri, pkce_pair()[1])
    )
    assert response.status_code == 200
    assert_page_headers(response, "https://xn--r8jz45g.jp")
