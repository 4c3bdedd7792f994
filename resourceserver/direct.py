"""The MCP endpoint's own ASGI stack, served without a router (MCP 2025-11-25 and 2026-07-28
"Transports"; RFC 6750 §3; SECURITY-CASES S43, S61).

Every MCP request passes the same layers as through the resource server's Starlette app, in
the same order, and nothing else: error answers (a database error, also one of the token's
revocation check, becomes 503 with ``Retry-After``; any other failure becomes a plain 500 when
no response has started, and is raised again for the server to log), the Origin/Host guard
(DNS rebinding), bearer authentication and the endpoint itself. :class:`McpGate` is the first
two in one coroutine (each layer is a frame that an open stream keeps for hours, and a call
per request), and serves the deployment's page for a browser that opens the MCP URL
(:attr:`McpGate.browser_page`) before either. Routing,
Starlette's error and exception middleware and their per-request objects are what this
leaves out: they were a quarter of the hot path's CPU (bench/README.md "Where the time
goes"). :class:`DirectPaths` is a Starlette app that sends the requests of the paths in its
``direct`` table straight to their stack, and everything else (lifespan included) through
its router as usual.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy.exc import DBAPIError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from resourceserver.origin import OriginGuard, OriginPolicy
from resourceserver.settings import ResourceServerSettings

logger = logging.getLogger("charter.resourceserver")


async def database_unavailable(_request: Request, exc: Exception) -> Response:
    """The session store is unreachable: 503 with ``Retry-After`` rather than a bare 500 (S61)."""
    logger.error("database error on the MCP path: %s", type(exc).__name__)
    return JSONResponse(
        {"error": "temporarily_unavailable", "error_description": "try again shortly"},
        status_code=503,
        headers={"Retry-After": "5", "Cache-Control": "no-store"},
    )


class ErrorAnswers:
    """Answers what escapes the endpoint: 503 for database errors, else 500 (then re-raised)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if not await answer_failure(exc, started, scope, receive, send):
                raise


#: A browser's page for a request, or None when the request is not a browser's (see
#: :attr:`McpGate.browser_page`).
BrowserPage = Callable[[Scope], Response | None]


class McpGate:
    """:class:`ErrorAnswers` and :class:`OriginGuard` around ``app`` in one layer.

    ``browser_page``, when set (the deployment sets it), is asked first: a response it gives
    is sent instead of going on (a browser's ``GET`` of the MCP URL gets a page, as the
    deployment's outer wrapper did, before the origin check).
    """

    def __init__(self, app: ASGIApp, settings: ResourceServerSettings) -> None:
        self.app = app
        self.policy = OriginPolicy(settings)
        self.browser_page: BrowserPage | None = None
        #: The same layers one by one, for anything but HTTP (direct paths are HTTP only).
        self._layered = ErrorAnswers(OriginGuard(app, settings=settings))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._layered(scope, receive, send)
            return
        if self.browser_page is not None:
            page = self.browser_page(scope)
            if page is not None:
                await page(scope, receive, send)
                return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            problem = self.policy.problem(scope["headers"])
            if problem is None:
                await self.app(scope, receive, tracking_send)
            else:
                body = {"error": "forbidden", "error_description": problem}
                await JSONResponse(body, status_code=403)(scope, receive, tracking_send)
        except Exception as exc:
            if not await answer_failure(exc, started, scope, receive, send):
                raise


async def answer_failure(
    exc: Exception, started: bool, scope: Scope, receive: Receive, send: Send
) -> bool:
    """What :class:`ErrorAnswers` does with ``exc``: True when it was answered (a database
    error before the response started: 503); else False, after a plain 500 when nothing was
    sent yet (the caller raises it again for the server to log)."""
    if isinstance(exc, DBAPIError) and not started:
        await (await database_unavailable(Request(scope), exc))(scope, receive, send)
        return True
    if not started:
        await PlainTextResponse("Internal Server Error", status_code=500)(scope, receive, send)
    return False


def mcp_stack(
    endpoint: ASGIApp,
    settings: ResourceServerSettings,
    authenticate: Callable[[ASGIApp], ASGIApp],
) -> McpGate:
    """Error answers and origin guard (:class:`McpGate`) → authentication (bearer, or the
    host's) → ``endpoint``."""
    return McpGate(authenticate(endpoint), settings)


class DirectPaths(Starlette):
    """A Starlette app whose ``direct`` paths (exact match, HTTP only) skip its own stack."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.direct: dict[str, ASGIApp] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            direct = self.direct.get(scope["path"])
            if direct is not None:
                scope["app"] = self
                await direct(scope, receive, send)
                return
        await super().__call__(scope, receive, send)
