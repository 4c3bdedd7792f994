"""The start of the browser flow: ``GET /authorize`` (RFC 6749 §4.1.1, OAuth 2.1 §4.1.1,
OpenID Connect Core §3.1.2.1 ``prompt``; RFC 9700 §4.1 and S3, S4).

The request is validated (:mod:`authserver.oauth.authorization_request`). Then, in one
transaction: a browser already signed in whose consent is remembered gets the code at once (a
302 to the client); ``prompt=none`` answers ``login_required``/``consent_required`` instead of a
page; otherwise the request is stored as pending (counted per client IP, 429 past the limit)
and the login page, or the consent page of the signed-in user, is shown.

Errors before the client and redirect URI are validated are shown on our page (400). Later
errors go back to the client — redirected for static (admin-registered) clients and for clients
the signed-in user already consented to; for any other client the page shows the error with a
link back instead of redirecting (S4: no open redirector).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy.orm import Session
from starlette.responses import Response

from authserver.browser.approval import error_url, issue_if_remembered
from authserver.browser.consent import has_any_consent
from authserver.browser.login import LoggedIn, current_login
from authserver.browser.pages import Pages, client_name, error_page, person_label, redirect
from authserver.browser.pending import (
    RequestTerms,
    count_new_pending,
    load_pending,
    store_pending,
)
from authserver.context import AuthServer
from authserver.errors import ConsentRequiredError, LoginRequiredError, OAuthError
from authserver.oauth.authorization_request import (
    AuthorizationRequest,
    PageError,
    RedirectableError,
    validate_authorization_request,
)
from authserver.oauth.redirects import display_host
from authserver.storage.models import ClientKind

#: Redirect URI schemes never offered as a link on the error page.
UNSAFE_LINK_SCHEMES = frozenset({"javascript", "data", "vbscript", "file"})


@dataclass(frozen=True)
class StoredRequest:
    """A pending request just stored: its id and the CSRF token of its first form."""

    request_id: str
    csrf_token: str


class AuthorizationStart:
    """The blocking part of ``GET /authorize`` (run in a thread: SQL, client lookup)."""

    def __init__(self, server: AuthServer) -> None:
        self.server = server
        self.pages = Pages(server)

    def start(
        self,
        params: list[tuple[str, str]],
        browser_value: str,
        session_cookie: str | None,
        ip: str,
    ) -> Response:
        """Validate the request, then sign in, ask for consent, or issue a code."""
        try:
            request = validate_authorization_request(self.server, params)
        except PageError as error:
            return error_page(self.server, error.error, error.description)
        except RedirectableError as error:
            return self.client_error(error, session_cookie)
        terms = RequestTerms.from_request(request)
        with self.server.database.transaction() as session:
            login = None
            if "login" not in request.prompt:
                login = current_login(session, self.server, session_cookie)
            if login is not None and "consent" not in request.prompt:
                location = issue_if_remembered(session, self.server, terms, login.user.id, ip)
                if location is not None:
                    return redirect(location, status_code=302)
            if "none" in request.prompt:
                stored: StoredRequest | int | None = None
            else:
                stored = self._store(session, request, terms, browser_value, login, ip)
        if stored is None:
            return self.client_error(_silent_failure(request, login), session_cookie)
        if isinstance(stored, int):
            return self.pages.too_many_requests(stored)
        if login is not None:
            person = person_label(login.user)
            return self.pages.consent(
                stored.request_id, stored.csrf_token, terms, request.client, person
            )
        name = client_name(request.client)
        return self.pages.login(stored.request_id, stored.csrf_token, terms, name)

    def _store(
        self,
        session: Session,
        request: AuthorizationRequest,
        terms: RequestTerms,
        browser_value: str,
        login: LoggedIn | None,
        ip: str,
    ) -> StoredRequest | int:
        """Store the request as pending; seconds to wait instead when ``ip`` is over its limit.

        Every new pending row is counted against the client IP (bounded rows).
        """
        wait = count_new_pending(session, self.server, ip)
        if wait:
            return wait
        request_id, csrf_token = store_pending(
            session,
            self.server,
            terms,
            browser_value,
            fresh_login="login" in request.prompt,
            fresh_consent="consent" in request.prompt,
        )
        if login is not None:
            row = load_pending(session, self.server, request_id, browser_value)
            assert row is not None  # noqa: S101 - just stored
            row.user_id = login.user.id
            row.login_session_hash = login.session_hash
        return StoredRequest(request_id, csrf_token)

    def client_error(self, error: RedirectableError, session_cookie: str | None) -> Response:
        """An error for the client: redirected when trusted, else offered as a link (S4)."""
        oauth = error.error
        url = error_url(
            self.server, error.redirect.redirect_uri, oauth.error, oauth.description, error.state
        )
        if self._trusted(error, session_cookie):
            return redirect(url, status_code=302)
        scheme = urlsplit(error.redirect.redirect_uri).scheme.lower()
        return error_page(
            self.server,
            oauth.error,
            oauth.description,
            return_url=None if scheme in UNSAFE_LINK_SCHEMES else url,
            return_host=display_host(error.redirect.redirect_uri),
        )

    def _trusted(self, error: RedirectableError, session_cookie: str | None) -> bool:
        """True for a static client, or one the signed-in user consented to before (S4)."""
        if error.client.kind == ClientKind.STATIC:
            return True
        with self.server.database.transaction() as session:
            login = current_login(session, self.server, session_cookie)
            return login is not None and has_any_consent(
                session, self.server, login.user.id, error.client.client_id
            )


def _silent_failure(request: AuthorizationRequest, login: LoggedIn | None) -> RedirectableError:
    """``prompt=none`` when a page would be needed (OpenID Connect Core §3.1.2.6)."""
    problem: OAuthError = (
        LoginRequiredError("the user is not logged in")
        if login is None
        else ConsentRequiredError("the user has not approved this client")
    )
    return RedirectableError(problem, request.client, request.redirect, request.state)
