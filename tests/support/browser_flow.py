"""Drive the browser part of the authorization flow (login and consent forms) with plain httpx.

``authorize_with_login`` starts at ``/authorize`` with ``params``; ``follow_authorization`` starts
at any authorize URL (e.g. the one an SDK's redirect handler receives). Both keep the client's
cookies, post the login form (every hidden field plus ``username``/``password``) and the consent
form (every hidden field plus ``decision``), and return the first redirect that leaves the
authorization server — the client's redirect URI with ``code`` (or ``error``), ``state``, ``iss``.
A one-time password's change page is filled in with ``new_password`` when one is given (else the
flow stops there with :class:`AuthorizationFlowError`).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlencode

import httpx

MAX_STEPS = 10


class AuthorizationFlowError(AssertionError):
    """The flow stopped on a page that was neither a form nor a redirect to the client."""

    def __init__(self, message: str, response: httpx.Response) -> None:
        super().__init__(
            f"{message}: HTTP {response.status_code} at {response.url}\n{response.text[:2000]}"
        )
        self.response = response


@dataclass
class HtmlForm:
    """One ``<form>``: its attributes and its hidden/named inputs."""

    attrs: dict[str, str]
    fields: dict[str, str] = field(default_factory=dict)
    input_types: dict[str, str] = field(default_factory=dict)


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[HtmlForm] = []
        self._current: HtmlForm | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form":
            self._current = HtmlForm(values)
            self.forms.append(self._current)
        elif tag == "input" and self._current is not None and values.get("name"):
            name = values["name"]
            self._current.input_types[name] = values.get("type", "text")
            if values.get("type") == "hidden" or values.get("value"):
                self._current.fields[name] = values.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None


def parse_forms(html: str) -> list[HtmlForm]:
    """Every form on a page."""
    parser = _FormParser()
    parser.feed(html)
    return parser.forms


def _is_authorization_server(url: httpx.URL, as_origin: tuple[str, str, int | None]) -> bool:
    return (url.scheme, url.host, url.port) == as_origin and "/authorize" in url.path


async def _post_form(
    client: httpx.AsyncClient, page: httpx.Response, form: HtmlForm, extra: dict[str, str]
) -> httpx.Response:
    action = page.url.join(form.attrs.get("action") or str(page.url))
    data = {**form.fields, **extra}
    return await client.post(
        action,
        content=urlencode(data),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )


async def follow_authorization(
    client: httpx.AsyncClient,
    url: str | httpx.URL,
    username: str,
    password: str,
    approve: bool = True,
    *,
    new_password: str | None = None,
) -> httpx.URL:
    """Open ``url`` and complete login and consent; return the redirect to the client."""
    response = await client.get(url, follow_redirects=False)
    start = response.url
    as_origin = (start.scheme, start.host, start.port)
    logged_in = False
    for _ in range(MAX_STEPS):
        if response.is_redirect:
            target = response.url.join(response.headers["location"])
            if not _is_authorization_server(target, as_origin):
                return target
            response = await client.get(target, follow_redirects=False)
            continue
        if response.status_code != 200:
            raise AuthorizationFlowError(
                "the authorization server answered with an error", response
            )
        forms = {form.attrs.get("data-form", ""): form for form in parse_forms(response.text)}
        if "login" in forms:
            if logged_in:
                raise AuthorizationFlowError("the login form came back", response)
            logged_in = True
            response = await _post_form(
                client, response, forms["login"], {"username": username, "password": password}
            )
        elif "consent" in forms:
            decision = "approve" if approve else "deny"
            response = await _post_form(client, response, forms["consent"], {"decision": decision})
        elif "change-password" in forms and new_password is not None:
            extra = {"new_password": new_password, "new_password_confirm": new_password}
            response = await _post_form(client, response, forms["change-password"], extra)
        elif "change-password" in forms:
            raise AuthorizationFlowError("asked to change the one-time password", response)
        else:
            raise AuthorizationFlowError("no login or consent form on the page", response)
    raise AuthorizationFlowError("too many steps", response)


async def authorize_with_login(
    client: httpx.AsyncClient,
    params: dict[str, Any],
    username: str,
    password: str,
    approve: bool = True,
    *,
    authorize_url: str = "/authorize",
) -> httpx.URL:
    """Start at ``authorize_url`` with ``params`` and complete login and consent.

    ``authorize_url`` is resolved against the client's ``base_url`` when relative. Returns the
    redirect location (the client's redirect URI with ``code``/``error``, ``state``, ``iss``).
    """
    url = client.base_url.join(authorize_url).copy_merge_params(
        {key: value for key, value in params.items() if value is not None}
    )
    return await follow_authorization(client, url, username, password, approve)


def pkce_pair() -> tuple[str, str]:
    """A fresh PKCE ``(code_verifier, code_challenge)`` pair for S256 (RFC 7636 §4.1-§4.2)."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def authorize_params(
    client_id: str, redirect_uri: str | None, code_challenge: str, **extra: Any
) -> dict[str, Any]:
    """A valid authorization request's parameters; ``extra`` adds or (with None) drops some."""
    params: dict[str, Any] = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "code_challenge": code_challenge,
        "code_challenge_method": "S256",
        "state": secrets.token_urlsafe(16),
    }
    params.update(extra)
    return {key: value for key, value in params.items() if value is not None}
