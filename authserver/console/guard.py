"""Who may use the admin console (S93): a signed-in administrator. Not signed in, a page
answers 303 to the sign-in page (which comes back); signed in but not an admin, 403 — also for a
form post, whose CSRF token must moreover be derived from this browser's login
(:mod:`authserver.browser.account_forms`)."""

from __future__ import annotations

from starlette.responses import Response

from authserver.browser.account_forms import CONSOLE_FORM, form_token_matches
from authserver.browser.account_pages import admins_only, form_refused
from authserver.browser.signed_in import SignedIn, read_signed_in, to_sign_in
from authserver.context import AuthServer


def admin_for_page(server: AuthServer, cookie: str | None, wanted: str) -> SignedIn | Response:
    """The signed-in admin, or the answer for anyone else (``wanted``: the page asked for)."""
    user = read_signed_in(server, cookie)
    if user is None:
        return to_sign_in(server, wanted)
    if not user.is_admin:
        return admins_only(server)
    return user


def admin_for_post(
    server: AuthServer, cookie: str | None, token: str | None
) -> SignedIn | Response:
    """The signed-in admin whose form this is, or 403."""
    user = read_signed_in(server, cookie)
    if user is None or not form_token_matches(CONSOLE_FORM, user.cookie_value, token):
        return form_refused(server)
    if not user.is_admin:
        return admins_only(server)
    return user
