"""The stand-alone sign-in page of one's own account: ``GET``/``POST /account/sign-in``
(RFC 6749 §3.1 user authentication outside an authorization request; RFC 9700 §4.4; S20, S51,
S53).

The account pages (:mod:`authserver.browser.applications`, :mod:`authserver.console`) send a
browser that is not signed in here with ``next``; the right password makes a login session
(the same as the authorization flow's login form, with its throttling: :func:`log_in`) and
answers 303 to ``next`` (only our own account pages, :func:`safe_next`). The form's CSRF token
is bound to the browser-binding cookie, so a login cannot be forced on the browser from another
site. A one-time password signs nobody in here: its change page belongs to an authorization
request, so the page says to sign in through an application first.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from authserver.browser.account_forms import SIGN_IN_FORM, form_token, form_token_matches
from authserver.browser.cookies import (
    BROWSER_COOKIE,
    BROWSER_COOKIE_TTL,
    SESSION_COOKIE,
    browser_id,
    read_cookie,
    set_cookie,
)
from authserver.browser.forms import Form, single
from authserver.browser.login import (
    LoginSucceeded,
    LoginThrottled,
    PasswordChangeRequired,
    log_in,
)
from authserver.browser.pages import error_page, redirect, render_page
from authserver.browser.sign_in import THROTTLED, WRONG_CREDENTIALS
from authserver.browser.signed_in import CONSOLE_PATH, SIGN_IN_PATH, read_signed_in, safe_next
from authserver.context import AuthServer
from authserver.endpoints.bodies import read_browser_form
from authserver.endpoints.sign_in_step import run_sign_in_step

REPLACE_FIRST = (
    "Your password is a one-time password and must be replaced first. Connect an application "
    "and sign in there (it asks you to choose your own password), or ask an administrator."
)


class AccountSignIn:
    """The sign-in page's blocking work (SQL, argon2), run in a thread."""

    def __init__(self, server: AuthServer) -> None:
        self.server = server

    def page(
        self,
        browser_value: str,
        next_path: str,
        *,
        message: str | None = None,
        username: str = "",
        status_code: int = 200,
    ) -> Response:
        """The form (``next_path`` already checked)."""
        console = self.server.settings.issuer_path + CONSOLE_PATH
        return render_page(
            self.server,
            "account_sign_in.html",
            {
                "action": self.server.settings.issuer_path + SIGN_IN_PATH,
                "csrf_token": form_token(SIGN_IN_FORM, browser_value),
                "next": next_path,
                "for_console": next_path.startswith(console),
                "message": message,
                "username": username,
            },
            status_code=status_code,
        )

    def show(self, browser_value: str, session_cookie: str | None, wanted: str | None) -> Response:
        """``GET``: already signed in goes straight on; otherwise the form."""
        next_path = safe_next(self.server, wanted)
        if read_signed_in(self.server, session_cookie) is not None:
            return redirect(next_path, status_code=303)
        return self.page(browser_value, next_path)

    def sign_in(
        self, form: Form, browser_value: str | None, ip: str
    ) -> tuple[Response, str | None]:
        """``POST``: check the token and the password; the response and a new session cookie."""
        next_path = safe_next(self.server, single(form, "next"))
        if browser_value is None or not form_token_matches(
            SIGN_IN_FORM, browser_value, single(form, "csrf_token")
        ):
            return error_page(
                self.server,
                "invalid_request",
                "The sign-in form could not be verified. Open the page again and sign in.",
                status_code=403,
            ), None
        username = single(form, "username") or ""
        outcome = log_in(self.server, username, single(form, "password") or "", ip, None)
        if isinstance(outcome, LoginSucceeded):
            return redirect(next_path, status_code=303), outcome.cookie_value
        if isinstance(outcome, PasswordChangeRequired):
            message, status = REPLACE_FIRST, 403
        elif isinstance(outcome, LoginThrottled):
            message, status = THROTTLED, 429
        else:
            message, status = WRONG_CREDENTIALS, 401
        page = self.page(
            browser_value, next_path, message=message, username=username, status_code=status
        )
        return page, None


def sign_in_routes(server: AuthServer) -> list[BaseRoute]:
    """``GET``/``POST /account/sign-in``."""
    signing_in = AccountSignIn(server)
    settings = server.settings

    async def account_sign_in(request: Request) -> Response:
        if request.method == "GET":
            browser_value, is_new = browser_id(request, settings)
            response = await run_in_threadpool(
                signing_in.show,
                browser_value,
                read_cookie(request, settings, SESSION_COOKIE),
                request.query_params.get("next"),
            )
            if is_new:
                set_cookie(response, settings, BROWSER_COOKIE, browser_value, BROWSER_COOKIE_TTL)
            return response
        form = await read_browser_form(request)
        if form is None:
            return error_page(server, "invalid_request", "Expected a form post.")
        return await run_sign_in_step(request, settings, signing_in.sign_in, form)

    return [Route(SIGN_IN_PATH, account_sign_in, methods=["GET", "POST"])]
