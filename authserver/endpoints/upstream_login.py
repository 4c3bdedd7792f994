"""Sign-in through an upstream OpenID Provider (OpenID Connect Core 1.0 §3.1): the browser
routes of :mod:`authserver.federation.relying_party`.

- ``GET /login/idp/<slug>?request_id=…`` — the login page's "Sign in with …" link: a 302 to
  the provider's authorization endpoint for the pending request of this browser.
- ``GET /login/idp/callback`` — the provider's answer (``code``, ``state``, ``iss`` or
  ``error``); sets the login cookie on success and continues the request (303).

No CORS (S8); every answer carries the pages' security headers. The relying party (and what
only it needs) is imported by the first request to these routes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from authserver.browser.cookies import BROWSER_COOKIE, read_cookie
from authserver.context import AuthServer
from authserver.endpoints.authorize import single_query_value
from authserver.endpoints.sign_in_step import run_sign_in_step
from authserver.federation.paths import CALLBACK_PATH, START_PATH

if TYPE_CHECKING:
    from authserver.federation.relying_party import UpstreamSignIn

#: Query parameters of the callback read once each (a repeated one counts as absent).
CALLBACK_PARAMS = ("code", "state", "iss", "error")


def routes(server: AuthServer) -> list[BaseRoute]:
    """The start and callback routes of the upstream sign-in."""
    made: list[UpstreamSignIn] = []
    settings = server.settings

    def signing_in() -> UpstreamSignIn:  # called on the event loop: made once
        if not made:
            from authserver.federation.relying_party import UpstreamSignIn

            made.append(UpstreamSignIn(server))
        return made[0]

    async def start(request: Request) -> Response:
        return await run_in_threadpool(
            signing_in().start,
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
        return await run_sign_in_step(request, settings, signing_in().callback, params)

    return [
        Route(CALLBACK_PATH, callback, methods=["GET"]),
        Route(START_PATH, start, methods=["GET"]),
    ]
