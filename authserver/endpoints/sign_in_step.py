"""Running one step of a browser sign-in (the password form, an upstream provider's callback)
off the event loop: the step gets the browser's cookie and the client's address, and the login
session cookie it hands back is set on its response (the cookie rules of
:mod:`authserver.browser.cookies`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from authserver.browser.cookies import BROWSER_COOKIE, SESSION_COOKIE, read_cookie, set_cookie
from authserver.config.settings import CharterSettings
from authserver.endpoints.client_address import client_ip

Payload = TypeVar("Payload")
#: ``step(payload, browser cookie value, client address)`` → response, new session cookie value.
SignInStep = Callable[[Payload, str | None, str], tuple[Response, str | None]]


async def run_sign_in_step(
    request: Request, settings: CharterSettings, step: SignInStep[Payload], payload: Payload
) -> Response:
    """Run ``step`` in a worker thread; set the session cookie it returns, if any."""
    response, cookie_value = await run_in_threadpool(
        step, payload, read_cookie(request, settings, BROWSER_COOKIE), client_ip(request)
    )
    if cookie_value is not None:
        set_cookie(response, settings, SESSION_COOKIE, cookie_value, settings.login_session_ttl)
    return response
