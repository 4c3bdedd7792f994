"""An existing FastAPI application with Charter (authorization server + MCP server) inside.

Run: ``CHARTER_DATA_DIR=./charter-data uvicorn examples.fastapi_app:app --port 8000``. The
host keeps its routes, its middleware and its lifespan; Charter is mounted last.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi import FastAPI, Request, Response

from authserver.deployment import embedded_deployment

charter, first_start = embedded_deployment()
if first_start.admin_password:
    print(f"Charter admin password: {first_start.admin_password}", file=sys.stderr)


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.started = True
    async with charter.lifespan():
        yield


app = FastAPI(lifespan=lifespan)


@app.middleware("http")
async def served_by(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    response = await call_next(request)
    response.headers["X-Served-By"] = "host-app"
    return response


@app.get("/")
async def home() -> dict[str, str]:
    return {"app": "the host application"}


@app.get("/health")
async def health(request: Request) -> dict[str, bool]:
    return {"ok": True, "started": request.app.state.started}


app.mount("/", charter.app)  # last: the host's routes come first
