"""The connected-applications page: ``GET /account/applications`` and
``POST /account/applications/revoke`` (RFC 7009 §2 from the user's side; RFC 9700 §4.4; S53,
S94). What they read and change is in :mod:`authserver.browser.applications`.

- ``GET``: signed in, the user's applications with a *Revoke…* form each; otherwise 303 to the
  sign-in page, which comes back here. A GET never changes anything.
- ``POST …/revoke`` (``csrf_token``, ``client_id``): a token not derived from this browser's
  login answers 403. Without ``confirm=yes`` the answer is the confirmation page (nothing
  changes); with it the user's grants and consents of that client are revoked and the answer is
  303 back to the list. A client the user has nothing of answers 404, whoever else it serves.
"""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from authserver.browser.account_forms import APPLICATIONS_FORM, form_token, form_token_matches
from authserver.browser.account_pages import form_refused, not_found, when
from authserver.browser.applications import (
    connected_application,
    connected_applications,
    disconnect,
)
from authserver.browser.cookies import SESSION_COOKIE, read_cookie
from authserver.browser.forms import Form, single
from authserver.browser.pages import LOGOUT_PATH, error_page, redirect, render_page
from authserver.browser.signed_in import (
    APPLICATIONS_PATH,
    CONSOLE_PATH,
    SignedIn,
    read_signed_in,
    to_sign_in,
)
from authserver.context import AuthServer
from authserver.endpoints.bodies import read_browser_form

REVOKE_PATH = APPLICATIONS_PATH + "/revoke"
REVOKED_NOTICE = "Access revoked."


class ApplicationsPage:
    """The page's blocking work (SQL), run in a thread."""

    def __init__(self, server: AuthServer) -> None:
        self.server = server
        self.base = server.settings.issuer_path

    def show(self, session_cookie: str | None, revoked: bool) -> Response:
        """``GET``: the list, or off to sign in."""
        user = read_signed_in(self.server, session_cookie)
        if user is None:
            return to_sign_in(self.server, self.base + APPLICATIONS_PATH)
        with self.server.database.transaction() as session:
            applications = connected_applications(session, user.user_id, self.server.now())
        return render_page(
            self.server,
            "applications.html",
            {
                "username": user.username,
                "applications": applications,
                "action": self.base + REVOKE_PATH,
                "csrf_token": form_token(APPLICATIONS_FORM, user.cookie_value),
                "notice": REVOKED_NOTICE if revoked else None,
                "when": when,
                "home_path": self.base + "/",
                "logout_path": self.base + LOGOUT_PATH,
                "console_path": self.base + CONSOLE_PATH if user.is_admin else None,
            },
        )

    def revoke(self, form: Form, session_cookie: str | None) -> Response:
        """``POST``: confirm, then revoke this user's access of one client."""
        user = read_signed_in(self.server, session_cookie)
        if user is None or not form_token_matches(
            APPLICATIONS_FORM, user.cookie_value, single(form, "csrf_token")
        ):
            return form_refused(self.server)
        client_id = single(form, "client_id") or ""
        if single(form, "confirm") != "yes":
            return self._confirm_page(user, client_id)
        with self.server.database.transaction() as session:
            revoked = disconnect(session, user.user_id, client_id, now=self.server.now())
        if revoked is None:
            return not_found(self.server, "connected application")
        query = urlencode({"revoked": "1"})
        return redirect(f"{self.base}{APPLICATIONS_PATH}?{query}", status_code=303)

    def _confirm_page(self, user: SignedIn, client_id: str) -> Response:
        with self.server.database.transaction() as session:
            app = connected_application(session, user.user_id, client_id, self.server.now())
        if app is None:
            return not_found(self.server, "connected application")
        return render_page(
            self.server,
            "applications_revoke.html",
            {
                "app": app,
                "action": self.base + REVOKE_PATH,
                "csrf_token": form_token(APPLICATIONS_FORM, user.cookie_value),
                "back": self.base + APPLICATIONS_PATH,
            },
        )


def applications_routes(server: AuthServer) -> list[BaseRoute]:
    """The page and its revoke form."""
    page = ApplicationsPage(server)
    settings = server.settings

    async def applications(request: Request) -> Response:
        revoked = request.query_params.get("revoked") == "1"
        cookie = read_cookie(request, settings, SESSION_COOKIE)
        return await run_in_threadpool(page.show, cookie, revoked)

    async def revoke(request: Request) -> Response:
        form = await read_browser_form(request)
        if form is None:
            return error_page(server, "invalid_request", "Expected a form post.")
        cookie = read_cookie(request, settings, SESSION_COOKIE)
        return await run_in_threadpool(page.revoke, form, cookie)

    return [
        Route(APPLICATIONS_PATH, applications, methods=["GET", "HEAD"]),
        Route(REVOKE_PATH, revoke, methods=["POST"]),
    ]
