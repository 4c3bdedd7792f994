"""The change page of a one-time password (``GET``/``POST /authorize/password``), one step of
the authorization endpoint's browser flow (:mod:`authserver.browser.password_form`; RFC 6749
§3.1; NIST SP 800-63B §5.1.1.2). A successful change sets the login cookie. No CORS (S8).
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from authserver.browser.cookies import BROWSER_COOKIE, SESSION_COOKIE, read_cookie, set_cookie
from authserver.browser.pages import PASSWORD_PATH, error_page
from authserver.browser.password_form import PasswordChangeForm
from authserver.context import AuthServer
from authserver.endpoints.authorize import single_query_value
from authserver.endpoints.bodies import read_browser_form
from authserver.endpoints.client_address import client_ip


def routes(server: AuthServer) -> list[BaseRoute]:
    """The change page's route."""
    changing = PasswordChangeForm(server)
    settings = server.settings

    async def password(request: Request) -> Response:
        browser_value = read_cookie(request, settings, BROWSER_COOKIE)
        if request.method == "GET":
            request_id = single_query_value(request, "request_id")
            return await run_in_threadpool(changing.show, request_id, browser_value)
        form = await read_browser_form(request)
        if form is None:
            return error_page(server, "invalid_request", "Expected a form post.")
        response, cookie_value = await run_in_threadpool(
            changing.change, form, browser_value, client_ip(request)
        )
        if cookie_value is not None:
            set_cookie(response, settings, SESSION_COOKIE, cookie_value, settings.login_session_ttl)
        return response

    return [Route(PASSWORD_PATH, password, methods=["GET", "POST"])]
