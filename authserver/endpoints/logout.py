"""The sign-out page and forms (OpenID Connect RP-Initiated Logout 1.0 §2 from the user's side:
the server confirms with the user before signing out; S51-S53). The logic is in
:mod:`authserver.browser.logout`.

Routes (paths are under the issuer's path):

- ``GET  /logout`` — signed in: a page naming the user with a *Sign out* form; otherwise a page
  saying the browser is signed out. A GET never signs out, so an image or link on another site
  cannot sign a user out.
- ``POST /logout`` — form field ``csrf_token`` (from that page); ends the login session, removes
  the cookie and answers 303 to ``GET /logout``. A wrong or missing token: 403, nothing changes.
  Without a session cookie there is nothing to end: 303 to ``GET /logout``.
- ``POST /authorize/logout`` — the consent page's *Not you? Sign out*: form fields
  ``request_id`` and ``csrf_token`` of the pending authorization request. Ends the login
  session, removes the cookie and answers 303 to that request's page, which now asks to sign in
  (as anyone) and then continues the same request.

Every answer carries the page headers of :mod:`authserver.browser.pages` (no-store, no framing, no
referrer, no CORS).
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from authserver.browser.login import (
    BROWSER_COOKIE,
    SESSION_COOKIE,
    current_login,
    read_cookie,
)
from authserver.browser.logout import (
    clear_session_cookie,
    end_login_sessions,
    logout_token,
    logout_token_matches,
)
from authserver.browser.pages import error_page, redirect, render_page
from authserver.browser.pending import csrf_matches, load_pending, rotate_csrf
from authserver.context import AuthServer
from authserver.endpoints.authorize import AuthorizeFlow, read_form
from authserver.endpoints.client_address import client_ip
from authserver.storage.crypto import hash_token


def _single(form: Mapping[str, list[str]], name: str) -> str | None:
    """A field sent exactly once, else None."""
    values = form.get(name, [])
    return values[0] if len(values) == 1 else None


class SignOut:
    """The blocking parts (SQL) of the sign-out routes, run in a thread."""

    def __init__(self, server: AuthServer) -> None:
        self.server = server
        self.flow = AuthorizeFlow(server)

    def page(self, session_cookie: str | None) -> Response:
        """``GET /logout``: the confirmation form when signed in, else the signed-out page."""
        with self.server.database.transaction() as session:
            login = current_login(session, self.server, session_cookie)
            username = login.user.username if login is not None else None
        context: dict[str, str | None] = {"username": username}
        if username is not None and session_cookie is not None:
            context["action"] = self.flow.path("/logout")
            context["csrf_token"] = logout_token(session_cookie)
        return render_page(self.server, "logout.html", context)

    def sign_out(
        self, form: Mapping[str, list[str]], session_cookie: str | None, ip: str
    ) -> Response:
        """``POST /logout``: end the session behind the cookie when the form's token fits it."""
        back = redirect(self.flow.path("/logout"), status_code=303)
        if session_cookie is None:
            return back
        if not logout_token_matches(session_cookie, _single(form, "csrf_token")):
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
        self,
        form: Mapping[str, list[str]],
        browser_value: str | None,
        session_cookie: str | None,
        ip: str,
    ) -> Response:
        """``POST /authorize/logout``: end the login, then back to this request's sign-in."""
        request_id = _single(form, "request_id")
        with self.server.database.transaction() as session:
            row = load_pending(session, self.server, request_id, browser_value)
            if row is None:
                return self.flow.expired_page()
            if not csrf_matches(row, _single(form, "csrf_token")):
                return self.flow.csrf_page()
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
        query = urlencode({"request_id": request_id})
        back = redirect(self.flow.path("/authorize/consent") + "?" + query, status_code=303)
        clear_session_cookie(back, self.server.settings)
        return back


def routes(server: AuthServer) -> list[BaseRoute]:
    """``/logout`` (GET page, POST form) and the consent page's ``POST /authorize/logout``."""
    signing_out = SignOut(server)
    settings = server.settings

    async def logout(request: Request) -> Response:
        session_cookie = read_cookie(request, settings, SESSION_COOKIE)
        if request.method == "GET":
            return await run_in_threadpool(signing_out.page, session_cookie)
        form = await read_form(request)
        if form is None:
            return error_page(server, "invalid_request", "Expected a form post.")
        return await run_in_threadpool(
            signing_out.sign_out, form, session_cookie, client_ip(request)
        )

    async def logout_of_request(request: Request) -> Response:
        form = await read_form(request)
        if form is None:
            return error_page(server, "invalid_request", "Expected a form post.")
        return await run_in_threadpool(
            signing_out.sign_out_of_request,
            form,
            read_cookie(request, settings, BROWSER_COOKIE),
            read_cookie(request, settings, SESSION_COOKIE),
            client_ip(request),
        )

    return [
        Route("/logout", logout, methods=["GET", "POST"]),
        Route("/authorize/logout", logout_of_request, methods=["POST"]),
    ]
