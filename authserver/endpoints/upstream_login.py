"""Sign-in through an upstream OpenID Provider (OpenID Connect Core 1.0 §3.1): the browser
routes of :mod:`authserver.federation.relying_party`.

- ``GET /login/idp/<slug>?request_id=…`` — the login page's "Sign in with …" link: a 302 to
  the provider's authorization endpoint for the pending request of this browser.
- ``GET /login/idp/callback`` — the provider's answer (``code``, ``state``, ``iss`` or
  ``error``); sets the login cookie on success and continues the request (303).

No CORS (S8); every answer carries the pages' security headers.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from authserver.browser.cookies import BROWSER_COOKIE, SESSION_COOKIE, read_cookie, set_cookie
from authserver.context import AuthServer
from authserver.endpoints.authorize import single_query_value
from authserver.endpoints.client_address import client_ip
from authserver.federation.relying_party import CALLBACK_PATH, UpstreamSignIn

#: Query parameters of the callback read once each (a repeated one counts as absent).
CALLBACK_PARAMS = ("code", "state", "iss", "error")


def routes(server: AuthServer) -> list[BaseRoute]:
    """The start and callback routes of the upstream sign-in."""
    signing_in = UpstreamSignIn(server)
    settings = server.settings

    async def start(request: Request) -> Response:
        return await run_in_threadpool(
            signing_in.start,
            str(request.path_params["slug"]),
            single_query_value(request, "request_id"),
            read_cookie(request, settings, BROWSER_COOKIE),
        )

    async def callback(request: Request) -> Response:
        params = {
            name: value
            for name in CALLBACK_PARAMS
            if (value := single_query_value(request, name)) is not None
        }
        response, cookie_value = await run_in_threadpool(
            signing_in.callback,
            params,
            read_cookie(request, settings, BROWSER_COOKIE),
            client_ip(request),
        )
        if cookie_value is not None:
            set_cookie(response, settings, SESSION_COOKIE, cookie_value, settings.login_session_ttl)
        return response

    return [
        Route(CALLBACK_PATH, callback, methods=["GET"]),
        Route("/login/idp/{slug}", start, methods=["GET"]),
    ]
