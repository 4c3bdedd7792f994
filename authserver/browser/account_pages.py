"""What the signed-in user's own pages share: times as people read them, and the answers for a
form that cannot be verified (403), a page only admins may see (403) and a row that is not
there, or not the user's (404) — none of which says whether anyone else's row exists (S93, S94).
"""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.responses import Response

from authserver.browser.pages import error_page
from authserver.context import AuthServer


def when(value: int | None) -> str:
    """A Unix time as ``YYYY-MM-DD HH:MM UTC``, or ``never``."""
    if value is None:
        return "never"
    return datetime.fromtimestamp(value, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


def form_refused(server: AuthServer) -> Response:
    """403: the form's CSRF token does not fit this browser's login."""
    return error_page(
        server,
        "invalid_request",
        "The form could not be verified. Open the page again and use its buttons.",
        status_code=403,
    )


def admins_only(server: AuthServer) -> Response:
    """403: the signed-in user is not an administrator."""
    return error_page(
        server,
        "access_denied",
        "The admin console is for administrators. Your account is not one.",
        status_code=403,
    )


def not_found(server: AuthServer, what: str) -> Response:
    """404: nothing of that name here (for this user)."""
    return error_page(server, "not_found", f"There is no such {what}.", status_code=404)
