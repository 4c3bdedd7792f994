"""A deployment's authorization server on a real uvicorn socket, with two users and a client,
and the steps a browser takes on its pages (used by the ``prompt=consent`` and sign-out tests)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import func, select

from authserver.context import AuthServer
from authserver.endpoints.app import create_app
from authserver.storage.models import AuditEvent, AuthorizationCode, Consent, LoginSession
from tests.support.browser_flow import authorize_params, parse_forms, pkce_pair
from tests.support.factories import create_client, create_user
from tests.support.live import free_port, serve_app

PASSWORD = "correct horse battery"
REDIRECT = "https://app.example.com/cb"


@dataclass(frozen=True)
class LiveServer:
    """The running server, its context (for looking at rows) and the test client's id."""

    server: AuthServer
    base_url: str
    client_id: str

    def params(self, **extra: Any) -> dict[str, Any]:
        """A valid authorization request of the test client (``extra`` adds parameters)."""
        return authorize_params(self.client_id, REDIRECT, pkce_pair()[1], **extra)

    def browser(self) -> httpx.AsyncClient:
        """A new browser: its own cookie jar, no redirects followed."""
        return httpx.AsyncClient(base_url=self.base_url, timeout=30)

    def count(self, model: Any, *conditions: Any) -> int:
        """Rows of ``model`` matching ``conditions``."""
        with self.server.database.transaction() as session:
            query = select(func.count()).select_from(model).where(*conditions)
            return int(session.scalar(query) or 0)

    def codes(self) -> int:
        return self.count(AuthorizationCode)

    def live_consents(self) -> int:
        return self.count(Consent, Consent.revoked_at.is_(None))

    def login_sessions(self) -> int:
        return self.count(LoginSession)

    def events(self, name: str) -> list[AuditEvent]:
        with self.server.database.transaction() as session:
            rows = session.scalars(select(AuditEvent).where(AuditEvent.event == name))
            return list(rows)


@contextmanager
def live_server(make_server: Callable[..., AuthServer]) -> Iterator[LiveServer]:
    """Users ``alice`` and ``bob``, one static client, served on 127.0.0.1."""
    port = free_port()
    server = make_server(issuer=f"http://127.0.0.1:{port}")
    create_user(server, "alice", PASSWORD)
    create_user(server, "bob", PASSWORD)
    client, _ = create_client(server, redirect_uris=[REDIRECT], client_name="Notes App")
    with serve_app(create_app(server), port=port) as base_url:
        yield LiveServer(server, base_url, client.client_id)


def form_of(response: httpx.Response, kind: str) -> tuple[str, dict[str, str]]:
    """The action and fields of the page's only ``data-form=kind`` form."""
    assert response.status_code == 200, response.text
    forms = [form for form in parse_forms(response.text) if form.attrs.get("data-form") == kind]
    assert len(forms) == 1, f"no single {kind} form on the page:\n{response.text[:2000]}"
    return forms[0].attrs["action"], dict(forms[0].fields)


def has_form(response: httpx.Response, kind: str) -> bool:
    """Whether the page shows a ``data-form=kind`` form."""
    return any(form.attrs.get("data-form") == kind for form in parse_forms(response.text))


async def log_in(
    browser: httpx.AsyncClient, login_page: httpx.Response, username: str
) -> httpx.Response:
    """Post the login form of ``login_page``; the answer (a 303)."""
    action, fields = form_of(login_page, "login")
    answer = await browser.post(action, data={**fields, "username": username, "password": PASSWORD})
    assert answer.status_code == 303, answer.text
    return answer


async def decide(
    browser: httpx.AsyncClient, consent_page: httpx.Response, decision: str
) -> httpx.URL:
    """Post ``decision`` on the consent form; the redirect to the client."""
    action, fields = form_of(consent_page, "consent")
    answer = await browser.post(action, data={**fields, "decision": decision})
    assert answer.status_code == 303, answer.text
    return httpx.URL(answer.headers["location"])


async def sign_in_and_approve(live: LiveServer, browser: httpx.AsyncClient, username: str) -> None:
    """A first grant: log in as ``username`` and approve (the consent is remembered)."""
    page = await browser.get("/authorize", params=live.params())
    consent = await browser.get((await log_in(browser, page, username)).headers["location"])
    assert f"Signed in as {username}" in consent.text
    location = await decide(browser, consent, "approve")
    assert location.params["code"]


def redirected_to_client(response: httpx.Response) -> httpx.URL:
    """The location of a redirect that leaves for the client's redirect URI."""
    assert response.status_code in (302, 303), response.text
    location = httpx.URL(response.headers["location"])
    assert str(location).startswith(REDIRECT), location
    return location
