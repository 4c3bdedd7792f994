"""The authorization endpoint and its login and consent forms (RFC 6749 §3.1 and §4.1,
OAuth 2.1 §4.1, RFC 9207, RFC 9700 §4.1-§4.5 and §4.11). The flow itself is in
:mod:`authserver.browser`; this module reads requests and cookies and sets cookies.

Routes (paths are under the issuer's path):

- ``GET  /authorize`` — :mod:`authserver.browser.start`: the login page, the consent page, or
  (logged in, consent remembered) a 302 to the client with ``code``, ``state`` and ``iss``.
  Requests that would store a new pending request are limited per client IP (429 page with
  ``Retry-After`` past the ``authorize_rate_per_minute`` setting). A metadata document
  ``client_id`` is fetched first, awaited on the event loop; past the client IP's fetch limit
  (``metadata_fetches_per_ip_per_minute``) the same 429 page answers (S96).
- ``POST /authorize/login`` — :mod:`authserver.browser.sign_in` (``request_id``,
  ``csrf_token``, ``username``, ``password``); sets the login cookie on success.
- ``GET  /authorize/consent?request_id=…`` and ``POST /authorize/consent`` (``request_id``,
  ``csrf_token``, ``decision=approve|deny``) — :mod:`authserver.browser.consent_form`.
- ``/authorize/password`` (:mod:`authserver.endpoints.password_change`) and
  ``POST /authorize/logout`` (:mod:`authserver.endpoints.logout`) complete the flow.

``prompt`` (OpenID Connect Core §3.1.2.1): ``none`` answers ``login_required``/
``consent_required`` instead of a page; ``login`` asks for the password even when a login
session exists, and its pending request can then be continued only by the login made on its own
login form; ``consent`` shows the consent page even when a remembered consent covers the
request, and denying there answers ``access_denied`` to this request only.

The hidden fields come from the pages' forms; the browser must keep the cookies the endpoint
sets (``charter_browser``/``charter_session``, ``__Host-`` prefixed on https issuers). No CORS
(S8).
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from authserver.browser.consent_form import ConsentForm
from authserver.browser.cookies import (
    BROWSER_COOKIE,
    BROWSER_COOKIE_TTL,
    SESSION_COOKIE,
    browser_id,
    read_cookie,
    set_cookie,
)
from authserver.browser.pages import CONSENT_PATH, LOGIN_PATH, error_page
from authserver.browser.sign_in import SignIn
from authserver.browser.start import AuthorizationStart
from authserver.clients.store import prefetch_client
from authserver.context import AuthServer
from authserver.endpoints.bodies import read_browser_form
from authserver.endpoints.client_address import client_ip
from authserver.endpoints.sign_in_step import run_sign_in_step
from authserver.oauth.authorization_request import document_client_id


def single_query_value(request: Request, name: str) -> str | None:
    """A query parameter sent exactly once, else None."""
    values = request.query_params.getlist(name)
    return values[0] if len(values) == 1 else None


def routes(server: AuthServer) -> list[BaseRoute]:
    """Routes of the authorization endpoint and its login and consent forms (no CORS, S8)."""
    starting, signing_in, consenting = (
        AuthorizationStart(server),
        SignIn(server),
        ConsentForm(server),
    )
    settings = server.settings

    async def authorize(request: Request) -> Response:
        params = parse_qsl(request.url.query, keep_blank_values=True)
        browser_value, is_new = browser_id(request, settings)
        ip = client_ip(request)
        wait = await prefetch_client(server, document_client_id(server, params), ip)
        if wait:
            return starting.pages.too_many_requests(wait)
        response = await run_in_threadpool(
            starting.start,
            params,
            browser_value,
            read_cookie(request, settings, SESSION_COOKIE),
            ip,
        )
        if is_new:
            set_cookie(response, settings, BROWSER_COOKIE, browser_value, BROWSER_COOKIE_TTL)
        return response

    async def login(request: Request) -> Response:
        form = await read_browser_form(request)
        if form is None:
            return error_page(server, "invalid_request", "Expected a form post.")
        return await run_sign_in_step(request, settings, signing_in.sign_in, form)

    async def consent(request: Request) -> Response:
        browser_value = read_cookie(request, settings, BROWSER_COOKIE)
        session_cookie = read_cookie(request, settings, SESSION_COOKIE)
        ip = client_ip(request)
        if request.method == "GET":
            request_id = single_query_value(request, "request_id")
            return await run_in_threadpool(
                consenting.show, request_id, browser_value, session_cookie, ip
            )
        form = await read_browser_form(request)
        if form is None:
            return error_page(server, "invalid_request", "Expected a form post.")
        return await run_in_threadpool(consenting.decide, form, browser_value, session_cookie, ip)

    return [
        Route("/authorize", authorize, methods=["GET"]),
        Route(LOGIN_PATH, login, methods=["POST"]),
        Route(CONSENT_PATH, consent, methods=["GET", "POST"]),
    ]
