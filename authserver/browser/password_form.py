"""The change page of a one-time password, one step of the browser flow: ``GET``/``POST
/authorize/password`` (RFC 6749 §3.1 user authentication; NIST SP 800-63B §5.1.1.2; RFC 9700
§4.4 and S51, S53).

The login form of a user whose password must change answers with a 303 here
(:mod:`authserver.browser.password_change` holds the proof that the one-time password was just
typed on this request). ``POST`` takes ``request_id``, ``csrf_token``, ``new_password`` and
``new_password_confirm``. A mismatch, a password breaking the rule of
:mod:`authserver.accounts.passwords` or the old password again shows the page again (400),
still not logged in. Success sets the password, starts the login session (cookie) and answers
like a login: a 303 to the consent page, or to the client when consent is remembered.

Like the login and consent forms, the page belongs to the pending request started in this
browser (browser-binding cookie) and carries a CSRF token rotated at every showing.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.responses import Response

from authserver.accounts.passwords import new_password_problem
from authserver.browser.approval import continue_after_login
from authserver.browser.forms import Form, single
from authserver.browser.login import create_login_session
from authserver.browser.pages import Pages, client_for_display
from authserver.browser.password_change import complete_password_change, user_changing_password
from authserver.browser.pending import RequestTerms, csrf_matches, load_pending, rotate_csrf
from authserver.context import AuthServer
from authserver.storage.audit import record_event

SIGN_IN_AGAIN = "Your sign-in has expired. Sign in again with your one-time password."


@dataclass(frozen=True)
class _Changing:
    """The request and user of a change page post, read in one transaction."""

    request_id: str
    csrf_token: str
    terms: RequestTerms
    pending_hash: str
    user_id: str
    username: str
    old_hash: str


class PasswordChangeForm:
    """The blocking parts of the change page (run in a thread: SQL, argon2)."""

    def __init__(self, server: AuthServer) -> None:
        self.server = server
        self.pages = Pages(server)

    def show(self, request_id: str | None, browser_value: str | None) -> Response:
        """The page of ``request_id`` (the login page when the proof is gone)."""
        with self.server.database.transaction() as session:
            row = load_pending(session, self.server, request_id, browser_value)
            if row is None:
                return self.pages.expired()
            terms = RequestTerms.from_pending(row)
            user = user_changing_password(session, self.server, row.id_hash)
            username = user.username if user is not None else ""
            csrf_token = rotate_csrf(row)
        assert request_id is not None  # noqa: S101 - load_pending needs it
        if user is None:
            return self._sign_in_again(request_id, csrf_token, terms)
        return self.pages.password_change(request_id, csrf_token, terms, username)

    def _sign_in_again(self, request_id: str, csrf_token: str, terms: RequestTerms) -> Response:
        name, _client = client_for_display(self.server, terms.client_id)
        return self.pages.login(request_id, csrf_token, terms, name, message=SIGN_IN_AGAIN)

    def change(self, form: Form, browser_value: str | None, ip: str) -> tuple[Response, str | None]:
        """Set the new password; returns the response and the new session cookie value."""
        read = self._read(form, browser_value)
        if not isinstance(read, _Changing):
            return read, None
        password = single(form, "new_password") or ""
        problem = self._problem(read, password, single(form, "new_password_confirm"))
        if problem is not None:
            page = self.pages.password_change(
                read.request_id,
                read.csrf_token,
                read.terms,
                read.username,
                message=problem,
                status_code=400,
            )
            return page, None
        return self._complete(read, self.server.passwords.hash(password), browser_value, ip)

    def _read(self, form: Form, browser_value: str | None) -> _Changing | Response:
        """The pending request and the user changing their password, or the page to show."""
        request_id = single(form, "request_id")
        with self.server.database.transaction() as session:
            row = load_pending(session, self.server, request_id, browser_value)
            if row is None:
                return self.pages.expired()
            if not csrf_matches(row, single(form, "csrf_token")):
                return self.pages.csrf_failed()
            terms = RequestTerms.from_pending(row)
            user = user_changing_password(session, self.server, row.id_hash)
            csrf_token = rotate_csrf(row)
            pending_hash = row.id_hash
        assert request_id is not None  # noqa: S101 - load_pending needs it
        if user is None:
            return self._sign_in_again(request_id, csrf_token, terms)
        return _Changing(
            request_id,
            csrf_token,
            terms,
            pending_hash,
            user.id,
            user.username,
            user.password_hash,
        )

    def _problem(self, read: _Changing, password: str, confirmation: str | None) -> str | None:
        """What is wrong with the new password (a sentence for the page), or None."""
        problem = new_password_problem(password)
        if problem is None and password != confirmation:
            problem = "The two passwords differ. Type the same new password twice."
        if problem is None and self.server.passwords.verify(read.old_hash, password):
            problem = "Choose a password different from the one-time password."
        return problem

    def _complete(
        self, read: _Changing, password_hash: str, browser_value: str | None, ip: str
    ) -> tuple[Response, str | None]:
        """Consume the proof, set the password and make the login (exactly once)."""
        with self.server.database.transaction() as session:
            row = load_pending(session, self.server, read.request_id, browser_value)
            if row is None:
                return self.pages.expired(), None
            if not complete_password_change(
                session, self.server, read.user_id, read.pending_hash, password_hash
            ):
                return self._sign_in_again(read.request_id, rotate_csrf(row), read.terms), None
            record_event(
                session,
                "password_changed",
                at=self.server.now(),
                client_id=read.terms.client_id,
                subject=read.user_id,
                ip=ip,
                actor="user",
            )
            cookie_value = create_login_session(session, self.server, read.user_id)
            response = continue_after_login(
                session, self.pages, row, read.request_id, read.user_id, cookie_value, ip
            )
        return response, cookie_value
