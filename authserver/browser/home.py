"""The pages a person sees who opens the server in a browser: the home page at ``/`` (what
this server is, the MCP URL to give a client) and, for a browser's ``GET`` of the MCP URL, a
short HTML explanation instead of the MCP server's JSON error.

A browser is told apart by its ``Accept`` header: a navigation asks for ``text/html``; MCP
clients ask for ``application/json`` and/or ``text/event-stream`` (MCP Streamable HTTP
transport), and their requests pass through untouched.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from authserver.browser.cookies import SESSION_COOKIE, read_cookie
from authserver.browser.pages import LOGOUT_PATH, render_page
from authserver.browser.signed_in import (
    APPLICATIONS_PATH,
    CONSOLE_PATH,
    SIGN_IN_PATH,
    read_signed_in,
)
from authserver.context import AuthServer

METADATA_PATH = "/.well-known/oauth-authorization-server"


def wants_html(accept: str) -> bool:
    """True for a browser navigation: ``text/html`` accepted, no event stream asked for."""
    accepted = accept.lower()
    return "text/html" in accepted and "text/event-stream" not in accepted


def home_routes(server: AuthServer) -> list[BaseRoute]:
    """``GET /``: the home page (with links to the account pages of the signed-in user)."""
    base = server.settings.issuer_path

    async def home(request: Request) -> Response:
        cookie = read_cookie(request, server.settings, SESSION_COOKIE)
        user = await run_in_threadpool(read_signed_in, server, cookie) if cookie else None
        return render_page(
            server,
            "home.html",
            {
                "resource_name": server.settings.resource_name,
                "mcp_url": server.settings.resource_url,
                "logout_path": LOGOUT_PATH,
                "metadata_path": METADATA_PATH,
                "username": user.username if user is not None else None,
                "applications_path": base + APPLICATIONS_PATH,
                "sign_in_path": base + SIGN_IN_PATH,
                "console_path": base + CONSOLE_PATH if user is not None and user.is_admin else None,
            },
        )

    return [Route("/", home, methods=["GET", "HEAD"])]


def mcp_browser_page(server: AuthServer) -> Callable[[Scope], Response | None]:
    """The page for a browser's ``GET`` of the MCP URL: given a request's scope, the page, or
    None for any other request (an MCP client's pass on untouched)."""
    path = urlsplit(server.settings.resource_url).path or "/"

    def page_for(scope: Scope) -> Response | None:
        if (
            scope["type"] == "http"
            and scope.get("method") == "GET"
            and scope.get("path") == path
            and wants_html(Request(scope).headers.get("accept", ""))
        ):
            return render_page(
                server, "mcp_browser.html", {"mcp_url": server.settings.resource_url}
            )
        return None

    return page_for


class ExplainMcpToBrowsers:
    """Plain ASGI wrapper of the MCP server: a browser's ``GET`` of the MCP path gets a page
    (:func:`mcp_browser_page`)."""

    def __init__(self, app: ASGIApp, *, server: AuthServer) -> None:
        self.app = app
        self.server = server
        self.page_for = mcp_browser_page(server)

    @property
    def routes(self) -> list[BaseRoute]:
        """The wrapped app's routes (a ``Mount`` of this wrapper lists them)."""
        routes: list[BaseRoute] = getattr(self.app, "routes", [])
        return routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        page = self.page_for(scope)
        if page is not None:
            await page(scope, receive, send)
            return
        await self.app(scope, receive, send)
