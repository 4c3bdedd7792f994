"""Drive Charter's sign-in through an upstream OpenID Provider as a browser would: Charter's
login page, its "Sign in with …" link, the provider, the callback, then Charter's consent.

Charter runs in process (its own cookie jar, like one browser); the provider is reached over
its real socket with another client, redirects followed by hand so that each hop is visible.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import func, select

from authserver.context import AuthServer
from authserver.endpoints.app import create_app
from authserver.federation.providers import check_scopes
from authserver.storage.crypto import new_id
from authserver.storage.models import IdentityProvider, User, UserLink
from tests.support.browser_flow import authorize_params, parse_forms, pkce_pair
from tests.support.factories import create_client

REDIRECT = "https://app.example.com/cb"
RESOURCE_SCOPES = "mcp notes:read notes:write"


def add_provider(
    server: AuthServer,
    issuer: str,
    *,
    slug: str = "corp",
    client_id: str = "charter-at-fake",
    secret: str | None = None,
    display_name: str = "Corp SSO",
    **fields: Any,
) -> IdentityProvider:
    """A provider row as ``charter idps add`` would write it."""
    now = server.now()
    values: dict[str, Any] = {
        "id": new_id(),
        "slug": slug,
        "display_name": display_name,
        "issuer": issuer,
        "client_id": client_id,
        "client_secret_encrypted": server.keys.encrypt_secret(secret) if secret else None,
        "client_secret_env": None,
        "token_endpoint_auth_method": "client_secret_basic",
        "scopes": check_scopes("openid profile email"),
        "enabled": True,
        "jit": True,
        "allowed_email_domains": [],
        "required_claims": {},
        "scope_claim": None,
        "scope_map": {},
        "created_at": now,
        "updated_at": now,
    }
    values.update(fields)
    row = IdentityProvider(**values)
    with server.database.transaction() as session:
        session.add(row)
    return row


def counts(server: AuthServer) -> tuple[int, int]:
    """How many users and account links exist."""
    with server.database.transaction() as session:
        users = session.scalar(select(func.count()).select_from(User))
        links = session.scalar(select(func.count()).select_from(UserLink))
    return int(users or 0), int(links or 0)


@dataclass
class UpstreamBrowser:
    """One browser: Charter in process, the provider over the network."""

    server: AuthServer
    charter: httpx.AsyncClient = field(init=False)
    network: httpx.AsyncClient = field(default_factory=lambda: httpx.AsyncClient(timeout=30))

    def __post_init__(self) -> None:
        transport = httpx.ASGITransport(app=create_app(self.server))
        self.charter = httpx.AsyncClient(
            transport=transport, base_url=self.server.settings.issuer, timeout=30
        )

    async def aclose(self) -> None:
        await self.charter.aclose()
        await self.network.aclose()

    async def __aenter__(self) -> UpstreamBrowser:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    def absolute(self, location: str) -> str:
        """A location of Charter's (a path) as a URL."""
        return self.server.settings.issuer + location if location.startswith("/") else location

    async def get(self, url: str | httpx.URL) -> httpx.Response:
        """GET ``url`` on Charter when it is Charter's, else over the network (no redirects)."""
        target = httpx.URL(str(url))
        if str(target).startswith(self.server.settings.issuer):
            return await self.charter.get(target, follow_redirects=False)
        return await self.network.get(target, follow_redirects=False)

    async def login_page(
        self, client_id: str, scope: str = RESOURCE_SCOPES, **extra: Any
    ) -> httpx.Response:
        """``/authorize`` for ``client_id``: Charter's login page (or its first redirect)."""
        params = authorize_params(client_id, REDIRECT, pkce_pair()[1], scope=scope, **extra)
        return await self.charter.get("/authorize", params=params, follow_redirects=False)

    async def provider_link(self, page: httpx.Response, name: str = "Corp SSO") -> str:
        """The href of the "Sign in with NAME" link of a login page."""
        assert page.status_code == 200, page.text
        marker = f'data-provider="{name}" href="'
        start = page.text.index(marker) + len(marker)
        return page.text[start : page.text.index('"', start)].replace("&amp;", "&")

    async def to_callback(self, start_url: str) -> httpx.URL:
        """Follow the start link through the provider until it sends the browser back."""
        response = await self.get(self.absolute(start_url))
        assert response.status_code == 302, response.text
        upstream = await self.get(response.headers["location"])
        assert upstream.status_code in (302, 303), upstream.text
        return httpx.URL(upstream.headers["location"])

    async def sign_in(self, client_id: str, **extra: Any) -> tuple[httpx.URL, httpx.Response]:
        """Login page → provider → callback; the callback URL and Charter's answer to it."""
        page = await self.login_page(client_id, **extra)
        callback = await self.to_callback(await self.provider_link(page))
        return callback, await self.get(callback)

    async def approve(self, consent_location: str) -> httpx.URL:
        """Open the consent page and allow; the redirect to the client."""
        page = await self.get(self.absolute(consent_location))
        assert page.status_code == 200, page.text
        form = next(f for f in parse_forms(page.text) if f.attrs.get("data-form") == "consent")
        answer = await self.charter.post(
            form.attrs["action"], data={**form.fields, "decision": "approve"}
        )
        assert answer.status_code in (302, 303), answer.text
        return httpx.URL(answer.headers["location"])


def mcp_client(server: AuthServer) -> str:
    """A static client of Charter (the MCP client in these tests)."""
    client, _ = create_client(server, redirect_uris=[REDIRECT])
    return client.client_id


@dataclass
class FederatedPerson:
    """A person signing in to a running Charter through node-oidc-provider, headless: Charter's
    login page, its "Sign in with NAME" link, the provider's real login and consent forms
    (:class:`tests.support.oidc_provider.ProviderUser`), back to Charter's consent page, which
    is approved. Usable as the SDK's redirect handler (``authorize``, ``last_redirect``)."""

    charter_url: str
    provider_login: str
    provider_password: str = "any-password"
    provider_name: str = "Corp SSO"
    last_redirect: httpx.URL | None = None
    #: Where the provider sent the browser back to (Charter's callback with code and state).
    callback: httpx.URL | None = None
    pages: list[str] = field(default_factory=list)
    http: httpx.AsyncClient = field(default_factory=lambda: httpx.AsyncClient(timeout=30))

    async def aclose(self) -> None:
        await self.http.aclose()

    async def authorize(self, url: str) -> httpx.URL:
        """Open Charter's authorize ``url``; the redirect to the client after consent."""
        from tests.support.oidc_provider import ProviderUser

        page = await self.http.get(url, follow_redirects=False)
        assert page.status_code == 200, page.text
        self.pages.append("charter-login")
        marker = f'data-provider="{self.provider_name}" href="'
        start = page.text.index(marker) + len(marker)
        link = page.text[start : page.text.index('"', start)].replace("&amp;", "&")
        sent = await self.http.get(self.charter_url + link, follow_redirects=False)
        assert sent.status_code == 302, sent.text
        upstream = ProviderUser(self.provider_login, self.provider_password)
        try:
            back = await upstream.authorize(sent.headers["location"])
        finally:
            await upstream.aclose()
        self.pages += upstream.pages
        self.callback = back
        answer = await self.http.get(back, follow_redirects=False)
        assert answer.status_code == 303, answer.text
        location = httpx.URL(self.charter_url).join(answer.headers["location"])
        if str(location).startswith(self.charter_url):
            consent = await self.http.get(location, follow_redirects=False)
            assert consent.status_code == 200, consent.text
            self.pages.append("charter-consent")
            form = next(
                f for f in parse_forms(consent.text) if f.attrs.get("data-form") == "consent"
            )
            action = httpx.URL(self.charter_url).join(form.attrs["action"])
            approved = await self.http.post(
                action, data={**form.fields, "decision": "approve"}, follow_redirects=False
            )
            assert approved.status_code in (302, 303), approved.text
            location = httpx.URL(approved.headers["location"])
        self.last_redirect = location
        return location
