"""The HTML pages of the browser flow and their security headers (RFC 9700 §4.16, S52, S55).

Every page and redirect is uncacheable, unframeable, sends no referrer, loads nothing from third
parties (inline CSS only) and carries no CORS headers (S8). :class:`Pages` builds the flow's
pages for one deployment (login, consent, one-time password change, expired request, CSRF
failure, too many requests) and knows where their forms post (:data:`LOGIN_PATH` …), so that no
step of the flow needs another step to draw a page or to send the browser on.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlencode

from starlette.responses import HTMLResponse, RedirectResponse, Response

from authserver.accounts.passwords import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH
from authserver.browser.consent import consent_view
from authserver.browser.pending import RequestTerms
from authserver.clients.store import load_client
from authserver.context import AuthServer
from authserver.federation.providers import enabled_providers
from authserver.oauth.redirects import csp_sources
from authserver.oauth.resources import canonical_resource
from authserver.storage.models import Client, User

LOGIN_PATH = "/authorize/login"
CONSENT_PATH = "/authorize/consent"
PASSWORD_PATH = "/authorize/password"  # noqa: S105 - a path, not a password
SIGN_OUT_OF_REQUEST_PATH = "/authorize/logout"
LOGOUT_PATH = "/logout"
#: Followed by a provider's slug: the start of a sign-in through it.
UPSTREAM_PATH = "/login/idp/"
UNNAMED_CLIENT = "An unnamed application"
_CSP_SOURCE = re.compile(r"^[a-z][a-z0-9+.\-]*:(//[A-Za-z0-9.\-\[\]:]+)?$")

BASE_HEADERS: Mapping[str, str] = {
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


def content_security_policy(form_action_sources: Iterable[str] = ()) -> str:
    """The page CSP: nothing but inline styles; forms post to us (and may redirect onward).

    Only sources of the source-expression grammar's safe characters are kept (S101): no value
    can end a directive (``;``), start another policy (``,``) or make the header unencodable.
    """
    safe = [source for source in form_action_sources if _CSP_SOURCE.match(source)]
    sources = " ".join(dict.fromkeys(["'self'", *safe]))
    return (
        "default-src 'none'; style-src 'unsafe-inline'; "
        f"form-action {sources}; frame-ancestors 'none'; base-uri 'none'"
    )


def page_headers(form_action_sources: Iterable[str] = ()) -> dict[str, str]:
    """Headers of every HTML page."""
    headers = dict(BASE_HEADERS)
    headers["Content-Security-Policy"] = content_security_policy(form_action_sources)
    return headers


def render_page(
    server: AuthServer,
    template: str,
    context: Mapping[str, Any],
    *,
    status_code: int = 200,
    form_action_sources: Iterable[str] = (),
) -> HTMLResponse:
    """Render ``template`` (autoescaped) with the security headers."""
    html = server.templates.get_template(template).render(issuer=server.settings.issuer, **context)
    return HTMLResponse(html, status_code=status_code, headers=page_headers(form_action_sources))


def error_page(
    server: AuthServer,
    error: str,
    description: str,
    *,
    status_code: int = 400,
    return_url: str | None = None,
    return_host: str | None = None,
) -> HTMLResponse:
    """The AS's own error page; ``return_url`` offers (never follows) a way back to the client."""
    return render_page(
        server,
        "error.html",
        {
            "error": error,
            "description": description,
            "return_url": return_url,
            "return_host": return_host,
        },
        status_code=status_code,
    )


def redirect(location: str, *, status_code: int = 302) -> Response:
    """A redirect with the page headers (303 after a POST, S53)."""
    return RedirectResponse(location, status_code=status_code, headers=dict(BASE_HEADERS))


def client_name(client: Client | None) -> str:
    """What the pages call a client (its name, escaped by the templates, S55)."""
    name = (client.client_name or "").strip() if client is not None else ""
    return name or UNNAMED_CLIENT


def person_label(user: User) -> str:
    """How the pages name a signed-in user: ``Name (username)`` when the name is known."""
    if user.display_name and user.display_name != user.username:
        return f"{user.display_name} ({user.username})"
    return user.username


def client_for_display(server: AuthServer, client_id: str) -> tuple[str, Client | None]:
    """The client's name and row for display (reads the cache of metadata documents only)."""
    with server.database.transaction() as session:
        client = load_client(server, session, client_id)
    return client_name(client), client


class Pages:
    """The pages of the browser flow of one deployment, and where their forms post."""

    def __init__(self, server: AuthServer) -> None:
        self.server = server

    def path(self, suffix: str) -> str:
        """An endpoint path under the issuer's path (what our forms post to)."""
        return self.server.settings.issuer_path + suffix

    def request_location(self, path: str, request_id: str) -> str:
        """The page at ``path`` of the pending request ``request_id``."""
        return self.path(path) + "?" + urlencode({"request_id": request_id})

    def login(
        self,
        request_id: str,
        csrf_token: str,
        terms: RequestTerms,
        client: str,
        *,
        message: str | None = None,
        username: str = "",
        status_code: int = 200,
    ) -> Response:
        """The login page of a pending request (``client`` is the name shown): the password
        form (unless ``password_login`` is off) and a link per enabled upstream provider.

        Without the password form and with one provider only, a 302 goes straight to it.
        """
        providers = self.upstream_links(request_id)
        password_login = self.server.settings.password_login
        if not password_login and len(providers) == 1 and message is None:
            return redirect(providers[0][1], status_code=302)
        return render_page(
            self.server,
            "login.html",
            {
                "action": self.path(LOGIN_PATH),
                "request_id": request_id,
                "csrf_token": csrf_token,
                "client_name": client,
                "message": message,
                "username": username,
                "password_login": password_login,
                "providers": providers,
            },
            status_code=status_code,
            form_action_sources=csp_sources(terms.redirect_uri),
        )

    def upstream_links(self, request_id: str) -> list[tuple[str, str]]:
        """(display name, start URL) of every enabled upstream provider, for ``request_id``."""
        with self.server.database.transaction() as session:
            providers = [(row.display_name, row.slug) for row in enabled_providers(session)]
        query = urlencode({"request_id": request_id})
        return [(name, f"{self.path(UPSTREAM_PATH + slug)}?{query}") for name, slug in providers]

    def consent(
        self, request_id: str, csrf_token: str, terms: RequestTerms, client: Client, username: str
    ) -> Response:
        """The consent page of a pending request, naming the signed-in user."""
        names = {
            canonical_resource(url): name
            for url, name in self.server.settings.resource_names().items()
        }
        view = consent_view(
            client, terms.scope, terms.resource, terms.redirect_uri, names.get(terms.resource, "")
        )
        return render_page(
            self.server,
            "consent.html",
            {
                "action": self.path(CONSENT_PATH),
                "signout_action": self.path(SIGN_OUT_OF_REQUEST_PATH),
                "request_id": request_id,
                "csrf_token": csrf_token,
                "view": view,
                "username": username,
            },
            form_action_sources=csp_sources(terms.redirect_uri),
        )

    def password_change(
        self,
        request_id: str,
        csrf_token: str,
        terms: RequestTerms,
        username: str,
        *,
        message: str | None = None,
        status_code: int = 200,
    ) -> Response:
        """The page that replaces a one-time password before the login is made."""
        name, _client = client_for_display(self.server, terms.client_id)
        return render_page(
            self.server,
            "password.html",
            {
                "action": self.path(PASSWORD_PATH),
                "request_id": request_id,
                "csrf_token": csrf_token,
                "client_name": name,
                "username": username,
                "message": message,
                "min_length": MIN_PASSWORD_LENGTH,
                "max_length": MAX_PASSWORD_LENGTH,
            },
            status_code=status_code,
            form_action_sources=csp_sources(terms.redirect_uri),
        )

    def expired(self) -> Response:
        """The pending request is gone, expired or belongs to another browser."""
        return error_page(
            self.server,
            "invalid_request",
            "This sign-in request has expired or was started in another browser. "
            "Go back to the application and start again.",
        )

    def too_many_requests(self, retry_after: int) -> Response:
        """429: too many new sign-in requests from this network."""
        response = error_page(
            self.server,
            "temporarily_unavailable",
            "Too many sign-in requests came from your network in the last minute. "
            "Wait a minute, then go back to the application and try again.",
            status_code=429,
        )
        response.headers["Retry-After"] = str(retry_after)
        return response

    def password_login_off(self) -> Response:
        """403: passwords are turned off (``password_login``); only upstream providers sign in."""
        return error_page(
            self.server,
            "access_denied",
            "Signing in with a password is turned off on this server. "
            "Go back to the application and sign in with your organisation's account.",
            status_code=403,
        )

    def csrf_failed(self) -> Response:
        """403: the form's CSRF token (or the login it was shown to) does not match (S51)."""
        return error_page(
            self.server,
            "invalid_request",
            "The form could not be verified. Go back to the application and start again.",
            status_code=403,
        )
