"""HTML pages of the authorization endpoint and their security headers (RFC 9700 §4.16, S52).

Every page and redirect of ``/authorize`` is uncacheable, unframeable, sends no referrer, loads
nothing from third parties (inline CSS only) and carries no CORS headers (S8).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from starlette.responses import HTMLResponse, RedirectResponse, Response

from authserver.context import AuthServer

BASE_HEADERS: Mapping[str, str] = {
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


def content_security_policy(form_action_sources: Iterable[str] = ()) -> str:
    """The page CSP: nothing but inline styles; forms post to us (and may redirect onward)."""
    sources = " ".join(dict.fromkeys(["'self'", *form_action_sources]))
    return (
        "default-src 'none'; style-src 'unsafe-inline'; "
        f"form-action {sources}; frame-ancestors 'none'; base-uri 'none'"
    )


def page_headers(form_action_sources: Iterable[str] = ()) -> dict[str, str]:
    """Headers of every HTML page."""
    headers = dict(BASE_HEADERS)
    headers["Content-Security-Policy"] = content_security_policy(form_action_sources)
    return headers


def render_page(
    server: AuthServer,
    template: str,
    context: Mapping[str, Any],
    *,
    status_code: int = 200,
    form_action_sources: Iterable[str] = (),
) -> HTMLResponse:
    """Render ``template`` (autoescaped) with the security headers."""
    html = server.templates.get_template(template).render(issuer=server.settings.issuer, **context)
    return HTMLResponse(html, status_code=status_code, headers=page_headers(form_action_sources))


def error_page(
    server: AuthServer,
    error: str,
    description: str,
    *,
    status_code: int = 400,
    return_url: str | None = None,
    return_host: str | None = None,
) -> HTMLResponse:
    """The AS's own error page; ``return_url`` offers (never follows) a way back to the client."""
    return render_page(
        server,
        "error.html",
        {
            "error": error,
            "description": description,
            "return_url": return_url,
            "return_host": return_host,
        },
        status_code=status_code,
    )


def redirect(location: str, *, status_code: int = 302) -> Response:
    """A redirect with the page headers (303 after a POST, S53)."""
    return RedirectResponse(location, status_code=status_code, headers=dict(BASE_HEADERS))
