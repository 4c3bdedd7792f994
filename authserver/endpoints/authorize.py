"""The authorization endpoint with its login and consent forms (RFC 6749 §3.1 and §4.1,
OAuth 2.1 §4.1, RFC 9207, RFC 9700 §4.1-§4.5 and §4.11).

Routes (paths are under the issuer's path):

- ``GET  /authorize`` — validates the request; answers with the login page, the consent page,
  or (logged in, consent remembered) a 302 to the client with ``code``, ``state`` and ``iss``.
  Requests that would store a new pending request are limited per client IP (429 page with
  ``Retry-After`` past the ``authorize_rate_per_minute`` setting).
- ``POST /authorize/login`` — form fields ``request_id``, ``csrf_token``, ``username``,
  ``password``; on success a 303 to the consent page (or straight to the client when consent is
  remembered); for a one-time password a 303 to its change page, ``/authorize/password``
  (:mod:`authserver.endpoints.password_change`), which signs in only once it is changed.
- ``GET  /authorize/consent?request_id=…`` — the consent page of a pending request.
- ``POST /authorize/consent`` — form fields ``request_id``, ``csrf_token``,
  ``decision=approve|deny``; a 303 to the client with a code or ``error=access_denied``.
- ``POST /authorize/logout`` — the consent page's *Not you? Sign out* form
  (:mod:`authserver.endpoints.logout`).

``prompt`` (OpenID Connect Core §3.1.2.1): ``none`` answers ``login_required``/
``consent_required`` instead of a page; ``login`` asks for the password even when a login
session exists, and its pending request can then be continued only by the login made on its own
login form (opening the consent page directly with an older session shows the login form again);
``consent`` shows the consent page even when a remembered consent covers the request. Denying
there answers ``access_denied`` to this request only: the consent remembered earlier stays (the
user refused this request, not the client; ``charter consents revoke`` forgets consents).
``login consent`` together asks for both; ``none`` with anything else is ``invalid_request``.

The hidden fields come from the pages' forms; the browser must keep the cookies the endpoint
sets (``charter_browser``/``charter_session``, ``__Host-`` prefixed on https issuers).

Errors before the client and redirect URI are validated are shown on our page (400). Later
errors go back to the client with ``error``, ``error_description``, ``state`` and ``iss`` —
automatically for static (admin-registered) clients and for clients the logged-in user already
consented to; for any other dynamically registered or metadata-document client the page shows
the error with a link back to the client instead of redirecting (S4: no open redirector).
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from authserver.browser.consent import consent_view, find_consent, has_any_consent, remember_consent
from authserver.browser.login import (
    BROWSER_COOKIE,
    BROWSER_COOKIE_TTL,
    SESSION_COOKIE,
    LoggedIn,
    LoginFailed,
    LoginSucceeded,
    LoginThrottled,
    PasswordChangeRequired,
    browser_id,
    current_login,
    log_in,
    read_cookie,
    set_cookie,
)
from authserver.browser.pages import error_page, redirect, render_page
from authserver.browser.password_change import begin_password_change
from authserver.browser.pending import (
    RequestTerms,
    bind_fresh_login,
    count_new_pending,
    csrf_matches,
    issue_code,
    load_pending,
    login_is_fresh_enough,
    rotate_csrf,
    store_pending,
)
from authserver.clients.store import load_client
from authserver.context import AuthServer
from authserver.endpoints import password_change
from authserver.endpoints.client_address import client_ip
from authserver.endpoints.password_change import PasswordChangeFlow
from authserver.errors import OAuthError
from authserver.oauth.authorization_request import (
    PageError,
    RedirectableError,
    validate_authorization_request,
)
from authserver.oauth.redirects import csp_source, display_host, response_url
from authserver.storage.audit import record_event
from authserver.storage.crypto import hash_token
from authserver.storage.models import Client, PendingAuthorization

MAX_FORM_BYTES = 64 * 1024
UNSAFE_LINK_SCHEMES = frozenset({"javascript", "data", "vbscript", "file"})

Form = dict[str, list[str]]


class LoginRequiredError(OAuthError):
    """``prompt=none`` but nobody is logged in (OpenID Connect Core §3.1.2.6)."""

    error = "login_required"


class ConsentRequiredError(OAuthError):
    """``prompt=none`` but consent must be asked for (OpenID Connect Core §3.1.2.6)."""

    error = "consent_required"


def _client_display(server: AuthServer, client_id: str) -> tuple[str, Client | None]:
    """The client's name and row for display (a metadata document client may be fetched)."""
    with server.database.transaction() as session:
        client = load_client(server, session, client_id)
    name = (client.client_name or "").strip() if client is not None else ""
    return name or "An unnamed application", client


def _success_url(server: AuthServer, terms: RequestTerms, code: str) -> str:
    return response_url(
        terms.redirect_uri, {"code": code, "state": terms.state, "iss": server.settings.issuer}
    )


def _error_url(
    server: AuthServer, redirect_uri: str, error: str, description: str, state: str | None
) -> str:
    return response_url(
        redirect_uri,
        {
            "error": error,
            "error_description": description or None,
            "state": state,
            "iss": server.settings.issuer,
        },
    )


class AuthorizeFlow:
    """The blocking parts of the endpoint (run in a thread: SQL, argon2, client lookup)."""

    def __init__(self, server: AuthServer) -> None:
        self.server = server
        self.settings = server.settings
        self.password_change = PasswordChangeFlow(self)

    # -- URLs and pages ---------------------------------------------------------------------

    def path(self, suffix: str) -> str:
        """An endpoint path under the issuer's path (what our forms post to)."""
        return self.settings.issuer_path + suffix

    def login_page(
        self,
        request_id: str,
        csrf_token: str,
        terms: RequestTerms,
        client_name: str,
        *,
        message: str | None = None,
        username: str = "",
        status_code: int = 200,
    ) -> Response:
        return render_page(
            self.server,
            "login.html",
            {
                "action": self.path("/authorize/login"),
                "request_id": request_id,
                "csrf_token": csrf_token,
                "client_name": client_name,
                "message": message,
                "username": username,
            },
            status_code=status_code,
            form_action_sources=[csp_source(terms.redirect_uri)],
        )

    def consent_page(
        self, request_id: str, csrf_token: str, terms: RequestTerms, client: Client, username: str
    ) -> Response:
        view = consent_view(client, terms.scope, terms.resource, terms.redirect_uri)
        return render_page(
            self.server,
            "consent.html",
            {
                "action": self.path("/authorize/consent"),
                "signout_action": self.path("/authorize/logout"),
                "request_id": request_id,
                "csrf_token": csrf_token,
                "view": view,
                "username": username,
            },
            form_action_sources=[csp_source(terms.redirect_uri)],
        )

    def expired_page(self) -> Response:
        return error_page(
            self.server,
            "invalid_request",
            "This sign-in request has expired or was started in another browser. "
            "Go back to the application and start again.",
        )

    def too_many_requests_page(self, retry_after: int) -> Response:
        response = error_page(
            self.server,
            "temporarily_unavailable",
            "Too many sign-in requests came from your network in the last minute. "
            "Wait a minute, then go back to the application and try again.",
            status_code=429,
        )
        response.headers["Retry-After"] = str(retry_after)
        return response

    def csrf_page(self) -> Response:
        return error_page(
            self.server,
            "invalid_request",
            "The form could not be verified. Go back to the application and start again.",
            status_code=403,
        )

    # -- GET /authorize ------------------------------------------------------------------------

    def authorize(
        self,
        params: list[tuple[str, str]],
        browser_value: str,
        session_cookie: str | None,
        ip: str,
    ) -> Response:
        """Validate the request, then log in, ask for consent, or issue a code."""
        try:
            request = validate_authorization_request(self.server, params)
        except PageError as error:
            return error_page(self.server, error.error, error.description)
        except RedirectableError as error:
            return self.client_error(error, session_cookie)
        terms = RequestTerms.from_request(request)
        silent = "none" in request.prompt
        fresh_login = "login" in request.prompt
        fresh_consent = "consent" in request.prompt
        wait = 0
        with self.server.database.transaction() as session:
            login = current_login(session, self.server, session_cookie)
            if fresh_login:
                login = None
            if login is not None and not fresh_consent:
                outcome = self.issue_if_remembered(session, terms, login.user.id, ip)
                if outcome is not None:
                    return redirect(outcome, status_code=302)
            if silent:
                problem: OAuthError = (
                    LoginRequiredError("the user is not logged in")
                    if login is None
                    else ConsentRequiredError("the user has not approved this client")
                )
                failure = RedirectableError(
                    problem, request.client, request.redirect, request.state
                )
            else:
                # Every new pending row is counted against the client IP (bounded rows).
                wait = count_new_pending(session, self.server, ip)
                if not wait:
                    request_id, csrf_token = store_pending(
                        session,
                        self.server,
                        terms,
                        browser_value,
                        fresh_login=fresh_login,
                        fresh_consent=fresh_consent,
                    )
                    if login is not None:
                        row = load_pending(session, self.server, request_id, browser_value)
                        assert row is not None  # noqa: S101 - just stored
                        row.user_id = login.user.id
                        row.login_session_hash = login.session_hash
        if silent:
            return self.client_error(failure, session_cookie)
        if wait:
            return self.too_many_requests_page(wait)
        if login is not None:
            return self.consent_page(
                request_id, csrf_token, terms, request.client, login.user.username
            )
        name = (request.client.client_name or "").strip() or "An unnamed application"
        return self.login_page(request_id, csrf_token, terms, name)

    def client_error(self, error: RedirectableError, session_cookie: str | None) -> Response:
        """An error for the client: redirected when trusted, else offered as a link (S4)."""
        oauth = error.error
        url = _error_url(
            self.server, error.redirect.redirect_uri, oauth.error, oauth.description, error.state
        )
        trusted = error.client.kind == "static"
        if not trusted:
            with self.server.database.transaction() as session:
                login = current_login(session, self.server, session_cookie)
                trusted = login is not None and has_any_consent(
                    session, self.server, login.user.id, error.client.client_id
                )
        if trusted:
            return redirect(url, status_code=302)
        scheme = urlsplit(error.redirect.redirect_uri).scheme.lower()
        return error_page(
            self.server,
            oauth.error,
            oauth.description,
            return_url=None if scheme in UNSAFE_LINK_SCHEMES else url,
            return_host=display_host(error.redirect.redirect_uri),
        )

    def issue_if_remembered(
        self,
        session: Session,
        terms: RequestTerms,
        user_id: str,
        ip: str,
        row: PendingAuthorization | None = None,
    ) -> str | None:
        """When consent is remembered: issue a code and return the success URL.

        Never for a pending ``row`` that asked ``prompt=consent`` (the page must be shown).
        """
        if row is not None and row.fresh_consent_required:
            return None
        consent = find_consent(
            session,
            self.server,
            user_id=user_id,
            client_id=terms.client_id,
            scope=terms.scope,
            resource=terms.resource,
            redirect_uri=terms.registered_redirect_uri,
        )
        if consent is None:
            return None
        return self.issue(session, terms, user_id, ip)

    def issue(self, session: Session, terms: RequestTerms, user_id: str, ip: str) -> str:
        code = issue_code(session, self.server, terms, user_id)
        record_event(
            session,
            "code_issued",
            at=self.server.now(),
            client_id=terms.client_id,
            subject=user_id,
            ip=ip,
            scope=terms.scope,
            resource=terms.resource,
        )
        return _success_url(self.server, terms, code)

    # -- POST /authorize/login -----------------------------------------------------------------

    def login(self, form: Form, browser_value: str | None, ip: str) -> tuple[Response, str | None]:
        """Check the credentials; returns the response and a new session cookie value."""
        request_id = _single(form, "request_id")
        with self.server.database.transaction() as session:
            row = load_pending(session, self.server, request_id, browser_value)
            if row is None:
                return self.expired_page(), None
            if not csrf_matches(row, _single(form, "csrf_token")):
                return self.csrf_page(), None
            terms = RequestTerms.from_pending(row)
        assert request_id is not None  # noqa: S101 - load_pending needs it
        username = _single(form, "username") or ""
        password = _single(form, "password") or ""
        client_name, _client = _client_display(self.server, terms.client_id)
        outcome = log_in(self.server, username, password, ip, terms.client_id)
        if isinstance(outcome, LoginThrottled):
            return (
                self.login_page(
                    request_id,
                    _single(form, "csrf_token") or "",
                    terms,
                    client_name,
                    message="Too many failed sign-in attempts. Wait a few minutes and try again.",
                    username=username,
                    status_code=429,
                ),
                None,
            )
        if isinstance(outcome, LoginFailed):
            return (
                self.login_page(
                    request_id,
                    _single(form, "csrf_token") or "",
                    terms,
                    client_name,
                    message="Wrong username or password.",
                    username=username,
                    status_code=401,
                ),
                None,
            )
        if isinstance(outcome, PasswordChangeRequired):
            with self.server.database.transaction() as session:
                row = load_pending(session, self.server, request_id, browser_value)
                if row is None:
                    return self.expired_page(), None
                begin_password_change(session, self.server, outcome.user_id, row.id_hash)
            return redirect(self.password_change.location(request_id), status_code=303), None
        assert isinstance(outcome, LoginSucceeded)  # noqa: S101 - exhaustive
        with self.server.database.transaction() as session:
            row = load_pending(session, self.server, request_id, browser_value)
            if row is None:
                return self.expired_page(), outcome.cookie_value
            response = self.after_login(
                session, row, request_id, outcome.user_id, outcome.cookie_value, ip
            )
        return response, outcome.cookie_value

    def after_login(
        self,
        session: Session,
        row: PendingAuthorization,
        request_id: str,
        user_id: str,
        cookie_value: str,
        ip: str,
    ) -> Response:
        """Continue ``row`` with the login just made for it: a 303 to the client (consent
        remembered) or to the consent page."""
        terms = RequestTerms.from_pending(row)
        bind_fresh_login(row, user_id, hash_token(cookie_value))
        location = self.issue_if_remembered(session, terms, user_id, ip, row)
        if location is not None:
            session.delete(row)
            return redirect(location, status_code=303)
        query = urlencode({"request_id": request_id})
        return redirect(self.path("/authorize/consent") + "?" + query, status_code=303)

    # -- GET /authorize/consent ----------------------------------------------------------------

    def show_consent(
        self, request_id: str | None, browser_value: str | None, session_cookie: str | None, ip: str
    ) -> Response:
        """The consent page of a pending request (the login page when not logged in)."""
        with self.server.database.transaction() as session:
            row = load_pending(session, self.server, request_id, browser_value)
            if row is None:
                return self.expired_page()
            terms = RequestTerms.from_pending(row)
            login = current_login(session, self.server, session_cookie)
            if login is not None and not login_is_fresh_enough(row, login.session_hash):
                login = None  # prompt=login: an older login session must sign in again
            if login is not None:
                location = self.issue_if_remembered(session, terms, login.user.id, ip, row)
                if location is not None:
                    session.delete(row)
                    return redirect(location, status_code=302)
                row.user_id = login.user.id
                row.login_session_hash = login.session_hash
            csrf_token = rotate_csrf(row)
        assert request_id is not None  # noqa: S101 - load_pending needs it
        client_name, client = _client_display(self.server, terms.client_id)
        if client is None:
            return error_page(self.server, "invalid_client", "This application is no longer known.")
        if login is None:
            return self.login_page(request_id, csrf_token, terms, client_name)
        return self.consent_page(request_id, csrf_token, terms, client, login.user.username)

    # -- POST /authorize/consent ---------------------------------------------------------------

    def decide(
        self, form: Form, browser_value: str | None, session_cookie: str | None, ip: str
    ) -> Response:
        """Approve or deny; both answer with a 303 to the client (S53)."""
        decision = _single(form, "decision")
        with self.server.database.transaction() as session:
            row = load_pending(session, self.server, _single(form, "request_id"), browser_value)
            if row is None:
                return self.expired_page()
            if not csrf_matches(row, _single(form, "csrf_token")):
                return self.csrf_page()
            login = current_login(session, self.server, session_cookie)
            if not self._bound_to(row, login):
                return self.csrf_page()
            assert login is not None  # noqa: S101 - checked by _bound_to
            terms = RequestTerms.from_pending(row)
            user_id = login.user.id
            now = self.server.now()
            if decision == "approve":
                remember_consent(
                    session,
                    self.server,
                    user_id=user_id,
                    client_id=terms.client_id,
                    scope=terms.scope,
                    resource=terms.resource,
                    redirect_uri=terms.registered_redirect_uri,
                )
                record_event(
                    session,
                    "consent_granted",
                    at=now,
                    client_id=terms.client_id,
                    subject=user_id,
                    ip=ip,
                    scope=terms.scope,
                    resource=terms.resource,
                )
                session.delete(row)
                return redirect(self.issue(session, terms, user_id, ip), status_code=303)
            if decision == "deny":
                record_event(
                    session,
                    "consent_denied",
                    at=now,
                    client_id=terms.client_id,
                    subject=user_id,
                    ip=ip,
                )
                session.delete(row)
                url = _error_url(
                    self.server,
                    terms.redirect_uri,
                    "access_denied",
                    "The user denied the request.",
                    terms.state,
                )
                return redirect(url, status_code=303)
        return error_page(self.server, "invalid_request", "decision must be approve or deny.")

    @staticmethod
    def _bound_to(row: PendingAuthorization, login: LoggedIn | None) -> bool:
        """The consent form belongs to the login it was shown to (S51)."""
        return (
            login is not None
            and row.user_id == login.user.id
            and row.login_session_hash == login.session_hash
            and login_is_fresh_enough(row, login.session_hash)
        )


def _single(form: Mapping[str, list[str]], name: str) -> str | None:
    """A field sent exactly once, else None."""
    values = form.get(name, [])
    return values[0] if len(values) == 1 else None


async def read_form(request: Request) -> Form | None:
    """An ``application/x-www-form-urlencoded`` body of bounded size, or None."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        return None
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    form: Form = {}
    for name, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
        form.setdefault(name, []).append(value)
    return form


def routes(server: AuthServer) -> list[BaseRoute]:
    """Routes of the authorization endpoint and its forms (no CORS, S8)."""
    flow = AuthorizeFlow(server)
    settings = server.settings

    def bind_browser(response: Response, value: str, is_new: bool) -> Response:
        if is_new:
            set_cookie(response, settings, BROWSER_COOKIE, value, BROWSER_COOKIE_TTL)
        return response

    async def authorize(request: Request) -> Response:
        params = parse_qsl(request.url.query, keep_blank_values=True)
        browser_value, is_new = browser_id(request, settings)
        response = await run_in_threadpool(
            flow.authorize,
            params,
            browser_value,
            read_cookie(request, settings, SESSION_COOKIE),
            client_ip(request),
        )
        return bind_browser(response, browser_value, is_new)

    async def login(request: Request) -> Response:
        form = await read_form(request)
        if form is None:
            return error_page(server, "invalid_request", "Expected a form post.")
        response, cookie_value = await run_in_threadpool(
            flow.login, form, read_cookie(request, settings, BROWSER_COOKIE), client_ip(request)
        )
        if cookie_value is not None:
            set_cookie(response, settings, SESSION_COOKIE, cookie_value, settings.login_session_ttl)
        return response

    async def consent(request: Request) -> Response:
        browser_value = read_cookie(request, settings, BROWSER_COOKIE)
        session_cookie = read_cookie(request, settings, SESSION_COOKIE)
        ip = client_ip(request)
        if request.method == "GET":
            request_ids = request.query_params.getlist("request_id")
            request_id = request_ids[0] if len(request_ids) == 1 else None
            return await run_in_threadpool(
                flow.show_consent, request_id, browser_value, session_cookie, ip
            )
        form = await read_form(request)
        if form is None:
            return error_page(server, "invalid_request", "Expected a form post.")
        return await run_in_threadpool(flow.decide, form, browser_value, session_cookie, ip)

    return [
        Route("/authorize", authorize, methods=["GET"]),
        Route("/authorize/login", login, methods=["POST"]),
        Route("/authorize/consent", consent, methods=["GET", "POST"]),
        *password_change.routes(flow, read_form),
    ]
