"""The login form of a pending request: ``POST /authorize/login`` (RFC 6749 §3.1 user
authentication; RFC 9700 §4.4; S20, S51, S53).

Form fields ``request_id``, ``csrf_token``, ``username``, ``password``. Wrong credentials show
the form again (401; 429 when throttled). The right password signs in and answers 303: to the
client when consent is remembered, else to the consent page. A one-time password signs nobody
in: it answers 303 to the change page (:mod:`authserver.browser.password_form`), which makes
the login only once the password is changed.
"""

from __future__ import annotations

from starlette.responses import Response

from authserver.browser.approval import continue_after_login
from authserver.browser.forms import Form, single
from authserver.browser.login import (
    LoginFailed,
    LoginOutcome,
    LoginSucceeded,
    LoginThrottled,
    PasswordChangeRequired,
    log_in,
)
from authserver.browser.pages import PASSWORD_PATH, Pages, client_for_display, redirect
from authserver.browser.password_change import begin_password_change
from authserver.browser.pending import RequestTerms, csrf_matches, load_pending
from authserver.context import AuthServer

THROTTLED = "Too many failed sign-in attempts. Wait a few minutes and try again."
WRONG_CREDENTIALS = "Wrong username or password."


class SignIn:
    """The blocking part of the login form (run in a thread: SQL, argon2)."""

    def __init__(self, server: AuthServer) -> None:
        self.server = server
        self.pages = Pages(server)

    def sign_in(
        self, form: Form, browser_value: str | None, ip: str
    ) -> tuple[Response, str | None]:
        """Check the credentials; returns the response and a new session cookie value."""
        request_id = single(form, "request_id")
        if not self.server.settings.password_login:
            return self.pages.password_login_off(), None
        with self.server.database.transaction() as session:
            row = load_pending(session, self.server, request_id, browser_value)
            if row is None:
                return self.pages.expired(), None
            if not csrf_matches(row, single(form, "csrf_token")):
                return self.pages.csrf_failed(), None
            terms = RequestTerms.from_pending(row)
        assert request_id is not None  # noqa: S101 - load_pending needs it
        username = single(form, "username") or ""
        outcome = log_in(self.server, username, single(form, "password") or "", ip, terms.client_id)
        if isinstance(outcome, LoginThrottled | LoginFailed):
            return self._refused(outcome, form, request_id, terms, username), None
        if isinstance(outcome, PasswordChangeRequired):
            return self._password_change(outcome, request_id, browser_value), None
        return self._signed_in(outcome, request_id, browser_value, ip), outcome.cookie_value

    def _refused(
        self,
        outcome: LoginOutcome,
        form: Form,
        request_id: str,
        terms: RequestTerms,
        username: str,
    ) -> Response:
        """The login form again, saying why (429 throttled, 401 wrong credentials)."""
        throttled = isinstance(outcome, LoginThrottled)
        name, _client = client_for_display(self.server, terms.client_id)
        return self.pages.login(
            request_id,
            single(form, "csrf_token") or "",
            terms,
            name,
            message=THROTTLED if throttled else WRONG_CREDENTIALS,
            username=username,
            status_code=429 if throttled else 401,
        )

    def _password_change(
        self, outcome: PasswordChangeRequired, request_id: str, browser_value: str | None
    ) -> Response:
        """The one-time password was right: remember it for this request, go to the change page."""
        with self.server.database.transaction() as session:
            row = load_pending(session, self.server, request_id, browser_value)
            if row is None:
                return self.pages.expired()
            begin_password_change(session, self.server, outcome.user_id, row.id_hash)
        return redirect(self.pages.request_location(PASSWORD_PATH, request_id), status_code=303)

    def _signed_in(
        self, outcome: LoginSucceeded, request_id: str, browser_value: str | None, ip: str
    ) -> Response:
        """The login is made: continue the request it was made on."""
        with self.server.database.transaction() as session:
            row = load_pending(session, self.server, request_id, browser_value)
            if row is None:
                return self.pages.expired()
            return continue_after_login(
                session, self.pages, row, request_id, outcome.user_id, outcome.cookie_value, ip
            )
