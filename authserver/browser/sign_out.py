"""Signing out from the browser (OpenID Connect RP-Initiated Logout 1.0 §2 from the user's side:
the server confirms with the user before signing out; S51-S53). The session logic is in
:mod:`authserver.browser.logout`.

- ``GET /logout``: signed in, a page naming the user with a *Sign out* form; otherwise a page
  saying the browser is signed out. A GET never signs out.
- ``POST /logout``: the form's ``csrf_token`` must fit the session cookie; ends the login
  session, removes the cookie and answers 303 to ``GET /logout`` (403 on a wrong token).
- ``POST /authorize/logout``: the consent page's *Not you? Sign out* with the pending
  request's ``request_id`` and ``csrf_token``; ends the login and answers 303 to that request's
  page, which now asks to sign in (as anyone) and continues the same request.
"""

from __future__ import annotations

from starlette.responses import Response

from authserver.browser.cookies import clear_session_cookie
from authserver.browser.forms import Form, single
from authserver.browser.login import current_login
from authserver.browser.logout import end_login_sessions, logout_token, logout_token_matches
from authserver.browser.pages import (
    CONSENT_PATH,
    LOGOUT_PATH,
    Pages,
    error_page,
    redirect,
    render_page,
)
from authserver.browser.pending import csrf_matches, load_pending, rotate_csrf
from authserver.context import AuthServer
from authserver.storage.crypto import hash_token


class SignOut:
    """The blocking parts (SQL) of the sign-out routes, run in a thread."""

    def __init__(self, server: AuthServer) -> None:
        self.server = server
        self.pages = Pages(server)

    def page(self, session_cookie: str | None) -> Response:
        """``GET /logout``: the confirmation form when signed in, else the signed-out page."""
        with self.server.database.transaction() as session:
            login = current_login(session, self.server, session_cookie)
            username = login.user.username if login is not None else None
        context: dict[str, str | None] = {"username": username}
        if username is not None and session_cookie is not None:
            context["action"] = self.pages.path(LOGOUT_PATH)
            context["csrf_token"] = logout_token(session_cookie)
        return render_page(self.server, "logout.html", context)

    def sign_out(self, form: Form, session_cookie: str | None, ip: str) -> Response:
        """``POST /logout``: end the session behind the cookie when the form's token fits it."""
        back = redirect(self.pages.path(LOGOUT_PATH), status_code=303)
        if session_cookie is None:
            return back
        if not logout_token_matches(session_cookie, single(form, "csrf_token")):
            return error_page(
                self.server,
                "invalid_request",
                "The sign-out form could not be verified. Open the sign-out page again and "
                "use its Sign out button.",
                status_code=403,
            )
        with self.server.database.transaction() as session:
            end_login_sessions(
                session, self.server, [hash_token(session_cookie)], ip=ip, via="logout_page"
            )
        clear_session_cookie(back, self.server.settings)
        return back

    def sign_out_of_request(
        self, form: Form, browser_value: str | None, session_cookie: str | None, ip: str
    ) -> Response:
        """``POST /authorize/logout``: end the login, then back to this request's sign-in."""
        request_id = single(form, "request_id")
        with self.server.database.transaction() as session:
            row = load_pending(session, self.server, request_id, browser_value)
            if row is None:
                return self.pages.expired()
            if not csrf_matches(row, single(form, "csrf_token")):
                return self.pages.csrf_failed()
            # The browser's current login, and the one the consent page was shown to (the same
            # browser's, as the request is bound to it) when it has changed since.
            hashes = [hash_token(session_cookie)] if session_cookie is not None else []
            if row.login_session_hash is not None:
                hashes.append(row.login_session_hash)
            end_login_sessions(
                session, self.server, hashes, ip=ip, client_id=row.client_id, via="consent_page"
            )
            row.user_id = None
            row.login_session_hash = None
            rotate_csrf(row)  # the consent form just shown is void
        assert request_id is not None  # noqa: S101 - load_pending needs it
        back = redirect(self.pages.request_location(CONSENT_PATH, request_id), status_code=303)
        clear_session_cookie(back, self.server.settings)
        return back
