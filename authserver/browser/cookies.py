"""The browser's cookies (RFC 6265 §4.1; RFC 9700 §4.4; S51).

``__Host-charter_session`` holds the login and ``__Host-charter_browser`` binds pending
authorization requests and their forms to the browser that started them, so a form posted from
another site or another browser is refused. Both are Secure, HttpOnly, SameSite=Lax, Path=/.
Browsers refuse ``__Host-`` and Secure cookies over plain http, so on an ``http://`` loopback
issuer (development, tests) the names lose the prefix and the Secure flag. Only their hashes are
stored.
"""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response

from authserver.config.settings import CharterSettings
from authserver.storage.crypto import new_token

SESSION_COOKIE = "charter_session"
BROWSER_COOKIE = "charter_browser"
#: How long a browser id lives (it carries no authority of its own), seconds.
BROWSER_COOKIE_TTL = 30 * 86400
_TOKEN_SHAPE = re.compile(r"^[A-Za-z0-9_-]{22,128}$")


def secure_cookies(settings: CharterSettings) -> bool:
    """True when the issuer is https (then cookies are ``__Host-`` and Secure)."""
    return settings.issuer.startswith("https://")


def cookie_name(settings: CharterSettings, base: str) -> str:
    """The cookie name for ``base`` under this issuer."""
    return f"__Host-{base}" if secure_cookies(settings) else base


def set_cookie(
    response: Response, settings: CharterSettings, base: str, value: str, max_age: int
) -> None:
    """Set one of our cookies with the S51 flags."""
    response.set_cookie(
        cookie_name(settings, base),
        value,
        max_age=max_age,
        path="/",
        secure=secure_cookies(settings),
        httponly=True,
        samesite="lax",
    )


def read_cookie(request: Request, settings: CharterSettings, base: str) -> str | None:
    """Our cookie's value when present and token-shaped."""
    value = request.cookies.get(cookie_name(settings, base))
    if value is None or not _TOKEN_SHAPE.match(value):
        return None
    return value


def browser_id(request: Request, settings: CharterSettings) -> tuple[str, bool]:
    """The browser-binding id and whether it is new (then the caller sets the cookie)."""
    existing = read_cookie(request, settings, BROWSER_COOKIE)
    if existing is not None:
        return existing, False
    return new_token(), True


def clear_session_cookie(response: Response, settings: CharterSettings) -> None:
    """Tell the browser to drop the login cookie (same name, path and flags it was set with)."""
    response.delete_cookie(
        cookie_name(settings, SESSION_COOKIE),
        path="/",
        secure=secure_cookies(settings),
        httponly=True,
        samesite="lax",
    )
