"""An application that authenticates its users itself (Starlette ``AuthenticationMiddleware``)
with Charter's MCP server inside, taking the identity and scopes from ``request.user`` and
``request.auth.scopes``: no OAuth, per-tool scopes still apply.

Run: ``uvicorn examples.host_auth_app:app --port 8000`` and send ``X-API-Key: reader-key``
(scope ``mcp``: only ``whoami``) or ``X-API-Key: writer-key`` (also the notes tools).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.authentication import AuthCredentials, AuthenticationBackend, SimpleUser
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from resourceserver.embed import protected_mcp
from resourceserver.settings import ResourceServerSettings
from resourceserver.storage import sqlite_engine
from resourceserver.tools import builtin_registry

#: The host's users: API key -> (user name, scopes).
API_KEYS = {
    "reader-key": ("alice", ["mcp"]),
    "writer-key": ("bob", ["mcp", "notes:read", "notes:write"]),
}


class ApiKeyBackend(AuthenticationBackend):
    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, SimpleUser] | None:
        found = API_KEYS.get(conn.headers.get("x-api-key", ""))
        if found is None:
            return None
        name, scopes = found
        return AuthCredentials(scopes), SimpleUser(name)


engine = sqlite_engine(os.environ.get("EXAMPLE_DATABASE", "host-app.db"))
mcp = protected_mcp(
    builtin_registry(engine),
    settings=ResourceServerSettings(
        resource_url=os.environ.get("EXAMPLE_MCP_URL", "http://127.0.0.1:8000/mcp")
    ),
    engine=engine,
    host_authentication=True,
)


async def home(request: Request) -> PlainTextResponse:
    who = request.user.display_name if request.user.is_authenticated else "nobody"
    return PlainTextResponse(f"hello {who}")


@contextlib.asynccontextmanager
async def lifespan(_app: Starlette) -> AsyncIterator[None]:
    async with mcp.lifespan():
        yield


app = Starlette(
    routes=[Route("/", home), Mount("/", app=mcp.app)],
    middleware=[Middleware(AuthenticationMiddleware, backend=ApiKeyBackend())],
    lifespan=lifespan,
)
