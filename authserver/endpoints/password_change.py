"""The change page of a one-time password, one step of the authorization endpoint's browser flow
(RFC 6749 §3.1 user authentication; NIST SP 800-63B §5.1.1.2; RFC 9700 §4.4 and S51, S53).

Routes (under the issuer's path):

- ``GET  /authorize/password?request_id=…`` — the page, after the login form of a user whose
  password must change answered with a 303 here (:mod:`authserver.browser.password_change` holds the
  proof that the one-time password was just typed on this request).
- ``POST /authorize/password`` — form fields ``request_id``, ``csrf_token``, ``new_password``,
  ``new_password_confirm``. A mismatch, a password breaking the rule of
  :mod:`authserver.accounts.passwords` or the old password again shows the page again (400),
  still not logged in. Success sets the password, starts the login session (cookie) and answers
  like a login: a 303 to the consent page, or to the client when consent is remembered.

Like the login and consent forms, the page belongs to the pending request started in this
browser (browser-binding cookie) and carries a CSRF token rotated at every showing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from authserver.accounts.passwords import MIN_PASSWORD_LENGTH, new_password_problem
from authserver.browser.login import (
    BROWSER_COOKIE,
    MAX_PASSWORD_LENGTH,
    SESSION_COOKIE,
    create_login_session,
    read_cookie,
    set_cookie,
)
from authserver.browser.pages import error_page, render_page
from authserver.browser.password_change import complete_password_change, user_changing_password
from authserver.browser.pending import RequestTerms, csrf_matches, load_pending, rotate_csrf
from authserver.clients.store import load_client
from authserver.endpoints.client_address import client_ip
from authserver.oauth.redirects import csp_source
from authserver.storage.audit import record_event

if TYPE_CHECKING:
    from authserver.endpoints.authorize import AuthorizeFlow, Form

PATH = "/authorize/password"
SIGN_IN_AGAIN = "Your sign-in has expired. Sign in again with your one-time password."


class PasswordChangeFlow:
    """The blocking parts of the change page (run in a thread: SQL, argon2)."""

    def __init__(self, flow: AuthorizeFlow) -> None:
        self.flow = flow
        self.server = flow.server

    def location(self, request_id: str) -> str:
        """Where the login form sends a user whose password must change."""
        return self.flow.path(PATH) + "?" + urlencode({"request_id": request_id})

    def page(
        self,
        request_id: str,
        csrf_token: str,
        terms: RequestTerms,
        username: str,
        *,
        message: str | None = None,
        status_code: int = 200,
    ) -> Response:
        return render_page(
            self.server,
            "password.html",
            {
                "action": self.flow.path(PATH),
                "request_id": request_id,
                "csrf_token": csrf_token,
                "client_name": self._client_name(terms.client_id),
                "username": username,
                "message": message,
                "min_length": MIN_PASSWORD_LENGTH,
                "max_length": MAX_PASSWORD_LENGTH,
            },
            status_code=status_code,
            form_action_sources=[csp_source(terms.redirect_uri)],
        )

    def _client_name(self, client_id: str) -> str:
        with self.server.database.transaction() as session:
            client = load_client(self.server, session, client_id)
        name = (client.client_name or "").strip() if client is not None else ""
        return name or "An unnamed application"

    def show(self, request_id: str | None, browser_value: str | None) -> Response:
        """The page of ``request_id`` (the login page when the proof is gone)."""
        with self.server.database.transaction() as session:
            row = load_pending(session, self.server, request_id, browser_value)
            if row is None:
                return self.flow.expired_page()
            terms = RequestTerms.from_pending(row)
            user = user_changing_password(session, self.server, row.id_hash)
            username = user.username if user is not None else ""
            csrf_token = rotate_csrf(row)
        assert request_id is not None  # noqa: S101 - load_pending needs it
        if user is None:
            return self._sign_in_again(request_id, csrf_token, terms)
        return self.page(request_id, csrf_token, terms, username)

    def _sign_in_again(self, request_id: str, csrf_token: str, terms: RequestTerms) -> Response:
        return self.flow.login_page(
            request_id,
            csrf_token,
            terms,
            self._client_name(terms.client_id),
            message=SIGN_IN_AGAIN,
        )

    def change(self, form: Form, browser_value: str | None, ip: str) -> tuple[Response, str | None]:
        """Set the new password; returns the response and the new session cookie value."""
        request_id = _single(form, "request_id")
        with self.server.database.transaction() as session:
            row = load_pending(session, self.server, request_id, browser_value)
            if row is None:
                return self.flow.expired_page(), None
            if not csrf_matches(row, _single(form, "csrf_token")):
                return self.flow.csrf_page(), None
            terms = RequestTerms.from_pending(row)
            pending_hash = row.id_hash
            user = user_changing_password(session, self.server, pending_hash)
            csrf_token = rotate_csrf(row)
            if user is not None:
                user_id, username, old_hash = user.id, user.username, user.password_hash
        assert request_id is not None  # noqa: S101 - load_pending needs it
        if user is None:
            return self._sign_in_again(request_id, csrf_token, terms), None
        password = _single(form, "new_password") or ""
        problem = new_password_problem(password)
        if problem is None and password != _single(form, "new_password_confirm"):
            problem = "The two passwords differ. Type the same new password twice."
        if problem is None and self.server.passwords.verify(old_hash, password):
            problem = "Choose a password different from the one-time password."
        if problem is not None:
            page = self.page(
                request_id, csrf_token, terms, username, message=problem, status_code=400
            )
            return page, None
        password_hash = self.server.passwords.hash(password)
        with self.server.database.transaction() as session:
            row = load_pending(session, self.server, request_id, browser_value)
            if row is None:
                return self.flow.expired_page(), None
            if not complete_password_change(
                session, self.server, user_id, pending_hash, password_hash
            ):
                return self._sign_in_again(request_id, rotate_csrf(row), terms), None
            record_event(
                session,
                "password_changed",
                at=self.server.now(),
                client_id=terms.client_id,
                subject=user_id,
                ip=ip,
                actor="user",
            )
            cookie_value = create_login_session(session, self.server, user_id)
            response = self.flow.after_login(session, row, request_id, user_id, cookie_value, ip)
        return response, cookie_value


def _single(form: Form, name: str) -> str | None:
    """A field sent exactly once, else None."""
    values = form.get(name, [])
    return values[0] if len(values) == 1 else None


def routes(
    flow: AuthorizeFlow, read_form: Callable[[Request], Awaitable[Form | None]]
) -> list[BaseRoute]:
    """The change page's route (no CORS, S8); ``read_form`` is the endpoint's form reader."""
    changing = flow.password_change
    server = flow.server
    settings = server.settings

    async def password(request: Request) -> Response:
        browser_value = read_cookie(request, settings, BROWSER_COOKIE)
        if request.method == "GET":
            request_ids = request.query_params.getlist("request_id")
            request_id = request_ids[0] if len(request_ids) == 1 else None
            return await run_in_threadpool(changing.show, request_id, browser_value)
        form = await read_form(request)
        if form is None:
            return error_page(server, "invalid_request", "Expected a form post.")
        response, cookie_value = await run_in_threadpool(
            changing.change, form, browser_value, client_ip(request)
        )
        if cookie_value is not None:
            set_cookie(response, settings, SESSION_COOKIE, cookie_value, settings.login_session_ttl)
        return response

    return [Route(PATH, password, methods=["GET", "POST"])]
