"""The sign-out page and forms (OpenID Connect RP-Initiated Logout 1.0 §2 from the user's side;
S51-S53): ``GET``/``POST /logout`` and the consent page's ``POST /authorize/logout``. What they
do is in :mod:`authserver.browser.sign_out`; every answer carries the page headers of
:mod:`authserver.browser.pages` (no-store, no framing, no referrer, no CORS).
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from authserver.browser.cookies import BROWSER_COOKIE, SESSION_COOKIE, read_cookie
from authserver.browser.pages import LOGOUT_PATH, SIGN_OUT_OF_REQUEST_PATH, error_page
from authserver.browser.sign_out import SignOut
from authserver.context import AuthServer
from authserver.endpoints.bodies import read_browser_form
from authserver.endpoints.client_address import client_ip


def routes(server: AuthServer) -> list[BaseRoute]:
    """``/logout`` (GET page, POST form) and the consent page's ``POST /authorize/logout``."""
    signing_out = SignOut(server)
    settings = server.settings

    async def logout(request: Request) -> Response:
        session_cookie = read_cookie(request, settings, SESSION_COOKIE)
        if request.method == "GET":
            return await run_in_threadpool(signing_out.page, session_cookie)
        form = await read_browser_form(request)
        if form is None:
            return error_page(server, "invalid_request", "Expected a form post.")
        return await run_in_threadpool(
            signing_out.sign_out, form, session_cookie, client_ip(request)
        )

    async def logout_of_request(request: Request) -> Response:
        form = await read_browser_form(request)
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
        Route(LOGOUT_PATH, logout, methods=["GET", "POST"]),
        Route(SIGN_OUT_OF_REQUEST_PATH, logout_of_request, methods=["POST"]),
    ]
