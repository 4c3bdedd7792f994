"""A headless "user" for OAuth clients: opens the authorize URL, logs in, decides on consent.

Clients (the MCP SDK, the conformance suite) hand over an authorization URL and wait for the
redirect to their ``redirect_uri``. :class:`HeadlessUser` fetches that URL with its own httpx
client (never the client's auth-wrapped one), posts the real login and consent forms, and stops
at the first redirect leaving the authorization server without following it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlencode

import httpx

from tests.support.browser_flow import AuthorizationFlowError, parse_forms

MAX_STEPS = 10


@dataclass
class ConsentPage:
    """What one consent page showed."""

    authorize_url: str
    html: str

    def shows(self, text: str) -> bool:
        """True when ``text`` appears in the page."""
        return text in self.html


@dataclass
class HeadlessUser:
    """Logs in as ``username`` and approves (or, per ``decide``, denies) every consent."""

    username: str
    password: str
    #: Called with each consent page; True approves, False denies.
    decide: Callable[[ConsentPage], bool] = lambda _page: True
    authorize_urls: list[str] = field(default_factory=list)
    consent_pages: list[ConsentPage] = field(default_factory=list)
    login_pages: int = 0
    last_redirect: httpx.URL | None = None
    _http: httpx.AsyncClient = field(default_factory=lambda: httpx.AsyncClient(timeout=30))

    async def aclose(self) -> None:
        """Close the user's HTTP client."""
        await self._http.aclose()

    async def authorize(self, url: str) -> httpx.URL:
        """Open ``url``; log in and decide; return the redirect to the client."""
        self.authorize_urls.append(url)
        response = await self._http.get(url, follow_redirects=False)
        origin = (response.url.scheme, response.url.host, response.url.port)
        for _ in range(MAX_STEPS):
            if response.is_redirect:
                target = response.url.join(response.headers["location"])
                if (target.scheme, target.host, target.port) != origin:
                    self.last_redirect = target
                    return target
                response = await self._http.get(target, follow_redirects=False)
                continue
            if response.status_code != 200:
                raise AuthorizationFlowError("the authorization server answered an error", response)
            forms = {form.attrs.get("data-form", ""): form for form in parse_forms(response.text)}
            if "login" in forms:
                self.login_pages += 1
                login = forms["login"]
                extra = {"username": self.username, "password": self.password}
                response = await self._post(response, login.attrs, login.fields, extra)
            elif "consent" in forms:
                page = ConsentPage(url, response.text)
                self.consent_pages.append(page)
                decision = "approve" if self.decide(page) else "deny"
                consent = forms["consent"]
                extra = {"decision": decision}
                response = await self._post(response, consent.attrs, consent.fields, extra)
            elif "change-password" in forms:
                raise AuthorizationFlowError(
                    "asked to change a one-time password (CharterProcess.admin_password makes "
                    "the first admin's password reusable)",
                    response,
                )
            else:
                raise AuthorizationFlowError("no login or consent form on the page", response)
        raise AuthorizationFlowError("too many steps", response)

    async def _post(
        self,
        page: httpx.Response,
        attrs: dict[str, str],
        fields: dict[str, str],
        extra: dict[str, str],
    ) -> httpx.Response:
        action = page.url.join(attrs.get("action") or str(page.url))
        return await self._http.post(
            action,
            content=urlencode({**fields, **extra}),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            follow_redirects=False,
        )
