"""S103: bidirectional formatting characters in a client-chosen ``client_name`` are neutralised
on every page that shows it (login, consent, one-time password change): never sent raw, the
substitution visible (U+FFFD), and the name isolated in ``<bdi>`` (UAX #9 §2)."""

from __future__ import annotations

import httpx
import pytest

from authserver.context import AuthServer
from authserver.display import BIDI_CONTROLS
from tests.support.browser_flow import authorize_params, parse_forms, pkce_pair
from tests.support.factories import create_client, create_user

PASSWORD = "correct horse battery"
REDIRECT = "https://app.example.com/cb"
NAMES = [
    "Good App\u202emoc.live",
    "Good \u2067App\u2069 \u200fX",
    "\u202bEmbed\u202c \u202aLTR\u202c \u202dOverride\u202c \u2066iso\u2068first\u2069\u061c\u200e",
]


def assert_neutral(page: httpx.Response, shown: str) -> None:
    assert page.status_code == 200, page.text
    assert not set(page.text) & BIDI_CONTROLS
    assert f'<bdi class="client-name">{shown}</bdi>' in page.text


def neutralised(name: str) -> str:
    return "".join("\ufffd" if char in BIDI_CONTROLS else char for char in name)


@pytest.mark.parametrize("name", NAMES)
async def test_s103_login_and_consent_pages_neutralise_bidi_controls(
    auth_server: AuthServer, as_client: httpx.AsyncClient, name: str
) -> None:
    create_user(auth_server)
    client, _ = create_client(auth_server, redirect_uris=[REDIRECT], client_name=name)
    login = await as_client.get(
        "/authorize", params=authorize_params(client.client_id, REDIRECT, pkce_pair()[1])
    )
    assert_neutral(login, neutralised(name))
    form = parse_forms(login.text)[0]
    posted = await as_client.post(
        form.attrs["action"], data={**form.fields, "username": "alice", "password": PASSWORD}
    )
    consent = await as_client.get(posted.headers["location"])
    assert 'data-form="consent"' in consent.text
    assert_neutral(consent, neutralised(name))


async def test_s103_password_change_page_neutralises_bidi_controls(
    auth_server: AuthServer, as_client: httpx.AsyncClient
) -> None:
    create_user(auth_server, must_change_password=True)
    client, _ = create_client(auth_server, redirect_uris=[REDIRECT], client_name=NAMES[0])
    login = await as_client.get(
        "/authorize", params=authorize_params(client.client_id, REDIRECT, pkce_pair()[1])
    )
    form = parse_forms(login.text)[0]
    posted = await as_client.post(
        form.attrs["action"], data={**form.fields, "username": "alice", "password": PASSWORD}
    )
    page = await as_client.get(posted.headers["location"])
    assert "one-time password" in page.text
    assert_neutral(page, neutralised(NAMES[0]))
