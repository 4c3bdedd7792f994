"""An existing Starlette application with Charter (authorization server + MCP server) inside.

Run: ``CHARTER_DATA_DIR=./charter-data uvicorn examples.starlette_app:app --port 8000``. The
host keeps its routes (``/``, ``/health``), its middleware (the ``X-Served-By`` header) and its
lifespan; Charter answers ``/mcp``, the OAuth endpoints and the metadata documents.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from authserver.deployment import embedded_deployment

charter, first_start = embedded_deployment()
if first_start.admin_password:
    print(f"Charter admin password: {first_start.admin_password}", file=sys.stderr)


class ServedBy:
    """The host's own middleware: a header on every response (MCP's included)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def tagged(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)["X-Served-By"] = "host-app"
            await send(message)

        await self.app(scope, receive, tagged)


async def home(_request: Request) -> PlainTextResponse:
    return PlainTextResponse("the host application")


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True, "started": request.app.state.started})


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    app.state.started = True  # the host's own start-up work
    async with charter.lifespan():
        yield


app = Starlette(
    routes=[Route("/", home), Route("/health", health), Mount("/", app=charter.app)],
    middleware=[Middleware(ServedBy)],
    lifespan=lifespan,
)
