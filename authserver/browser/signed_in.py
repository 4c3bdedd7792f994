"""Who is signed in on a page of one's own account (connected applications, admin console),
and where a browser that is not signed in is sent (RFC 9700 §4.4; S51, S93, S94).

The login is the browser's session cookie (:mod:`authserver.browser.cookies`), checked by
:func:`authserver.browser.login.current_login` (unexpired, user enabled, password not changed
since). A browser without one is sent to the stand-alone sign-in page with the page it asked
for as ``next``; :func:`safe_next` accepts only our own account and console pages there, so the
sign-in page can never be made to send a browser to another site.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlencode

from sqlalchemy.orm import Session
from starlette.responses import Response

from authserver.browser.login import current_login
from authserver.browser.pages import redirect
from authserver.context import AuthServer

SIGN_IN_PATH = "/account/sign-in"
APPLICATIONS_PATH = "/account/applications"
CONSOLE_PATH = "/admin"
#: A ``next`` the sign-in page follows: a path of ours, plain characters, no scheme or host.
_NEXT_SHAPE = re.compile(r"^/[A-Za-z0-9/_\-.=&%?]{0,512}$")


@dataclass(frozen=True)
class SignedIn:
    """The signed-in user of a request, and the session cookie their forms' tokens bind to."""

    user_id: str
    username: str
    is_admin: bool
    cookie_value: str


def signed_in(session: Session, server: AuthServer, cookie_value: str | None) -> SignedIn | None:
    """The browser's valid login, or None."""
    login = current_login(session, server, cookie_value)
    if login is None or cookie_value is None:
        return None
    return SignedIn(login.user.id, login.user.username, login.user.is_admin, cookie_value)


def read_signed_in(server: AuthServer, cookie_value: str | None) -> SignedIn | None:
    """:func:`signed_in` in its own transaction."""
    with server.database.transaction() as session:
        return signed_in(session, server, cookie_value)


def safe_next(server: AuthServer, value: str | None) -> str:
    """``value`` when it is one of our account or console pages, else the applications page."""
    base = server.settings.issuer_path
    fallback = base + APPLICATIONS_PATH
    if not value or not _NEXT_SHAPE.match(value) or ".." in value or "//" in value:
        return fallback
    for prefix in (APPLICATIONS_PATH, CONSOLE_PATH):
        path = base + prefix
        if value == path or value.startswith((path + "/", path + "?")):
            return value
    return fallback


def to_sign_in(server: AuthServer, next_path: str) -> Response:
    """303 to the sign-in page, which comes back to ``next_path`` once signed in."""
    query = urlencode({"next": safe_next(server, next_path)})
    return redirect(f"{server.settings.issuer_path}{SIGN_IN_PATH}?{query}", status_code=303)
