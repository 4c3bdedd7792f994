"""CSRF tokens of the signed-in user's own pages (connected applications, admin console;
RFC 9700 §4.4, OWASP "synchronizer token" bound to the session; S93, S94).

As with the ``/logout`` form (:mod:`authserver.browser.logout`), a form's token is a SHA-256 of a
fixed label naming the page and the HttpOnly session cookie's value: only a page served to the
browser holding that cookie can know it, it dies with the login, and a token of one page is
worthless on another. The stand-alone sign-in form, shown before any login, binds its token to
the browser-binding cookie the same way.
"""

from __future__ import annotations

from authserver.storage.crypto import hash_token, token_matches

#: The label of the connected-applications forms.
APPLICATIONS_FORM = "charter-applications-form:"
#: The label of the admin console's forms.
CONSOLE_FORM = "charter-console-form:"
#: The label of the stand-alone sign-in form (bound to the browser cookie, not a login).
SIGN_IN_FORM = "charter-account-sign-in-form:"
#: Longest token looked at (a SHA-256 hex digest has 64 characters).
_MAX_TOKEN_LENGTH = 128


def form_token(label: str, cookie_value: str) -> str:
    """The CSRF token of the forms labelled ``label`` for the browser holding ``cookie_value``."""
    return hash_token(label + cookie_value)


def form_token_matches(label: str, cookie_value: str | None, token: str | None) -> bool:
    """Constant-time check of a posted token against the cookie it must be derived from."""
    if cookie_value is None or not token or len(token) > _MAX_TOKEN_LENGTH:
        return False
    return token_matches(token, hash_token(form_token(label, cookie_value)))
