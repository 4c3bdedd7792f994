"""A loopback HTTP server for the SSRF guard and metadata document tests."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.support.live import serve_app


@dataclass
class DocumentServer:
    """Serves JSON documents set by tests, plus misbehaving routes; counts hits per path."""

    base_url: str = ""
    documents: dict[str, tuple[Any, dict[str, str]]] = field(default_factory=dict)
    hits: Counter[str] = field(default_factory=Counter)

    @property
    def host(self) -> str:
        """``127.0.0.1:<port>`` (for ``ssrf_allowed_hosts``)."""
        return self.base_url.removeprefix("http://")

    def url(self, path: str) -> str:
        return self.base_url + path

    def publish(self, path: str, document: Any, headers: dict[str, str] | None = None) -> str:
        """Serve ``document`` (JSON, or bytes as-is) at ``path``; returns its URL."""
        self.documents[path] = (document, headers or {})
        return self.url(path)


class _Routes:
    """The routes of a :class:`DocumentServer`; every one counts its hits."""

    def __init__(self, state: DocumentServer) -> None:
        self.state = state

    async def document(self, request: Request) -> Response:
        path = request.url.path
        self.state.hits[path] += 1
        if path not in self.state.documents:
            return Response(status_code=404)
        content, headers = self.state.documents[path]
        body = content if isinstance(content, bytes) else json.dumps(content).encode()
        return Response(body, media_type="application/json", headers=headers)

    async def redirect(self, request: Request) -> Response:
        self.state.hits[request.url.path] += 1
        return RedirectResponse(self.state.url("/docs/target.json"), status_code=302)

    async def big(self, request: Request) -> Response:
        self.state.hits[request.url.path] += 1
        return Response(b"x" * 100_000, media_type="application/json")

    async def big_chunked(self, request: Request) -> Response:
        self.state.hits[request.url.path] += 1

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(100):
                yield b"x" * 1000

        return StreamingResponse(chunks(), media_type="application/json")

    async def slow(self, request: Request) -> Response:
        self.state.hits[request.url.path] += 1
        await asyncio.sleep(2)
        return JSONResponse({})

    async def drip(self, request: Request) -> Response:
        self.state.hits[request.url.path] += 1

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(8):
                yield b" "
                await asyncio.sleep(0.3)
            yield b"{}"

        return StreamingResponse(chunks(), media_type="application/json")

    async def host_echo(self, request: Request) -> Response:
        self.state.hits[request.url.path] += 1
        return JSONResponse({"host": request.headers.get("host")})


def build_app(state: DocumentServer) -> Starlette:
    routes = _Routes(state)
    return Starlette(
        routes=[
            Route("/docs/{name:path}", routes.document),
            Route("/redirect", routes.redirect),
            Route("/big", routes.big),
            Route("/big-chunked", routes.big_chunked),
            Route("/slow", routes.slow),
            Route("/drip", routes.drip),
            Route("/host", routes.host_echo),
        ]
    )


@contextmanager
def document_server() -> Iterator[DocumentServer]:
    """A running :class:`DocumentServer` on 127.0.0.1 and a free port."""
    state = DocumentServer()
    with serve_app(build_app(state), timeout_graceful_shutdown=3) as base_url:
        state.base_url = base_url
        yield state
