"""An open event stream keeps nothing of its request's head under ``charter serve``'s protocol
(ASGI extension ``charter.release_request_head``; authserver.ops.http_limits and
resourceserver.mcp.sse_response), and keeps the scope untouched under any other server."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from typing import Any

import httpx
from starlette.datastructures import Headers
from starlette.types import Receive, Scope, Send

from authserver.ops.http_limits import RELEASE_HEAD_EXTENSION as OFFERED
from authserver.ops.http_limits import limited_http_options
from resourceserver.mcp.sse_response import RELEASE_HEAD_EXTENSION, EventStreamResponse
from tests.support.live import serve_app


def _stream_app(seen: dict[str, Any]) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        Headers(scope=scope)  # as the endpoint's Request does: the scope gets a copy of the list
        headers = scope["headers"]
        field = next(pair for pair in headers if pair[0] == b"x-probe")
        seen["extensions"] = sorted(scope.get("extensions") or {})

        async def events() -> AsyncIterator[str]:
            # The stream has started: what still refers to the header field, besides this
            # closure's cell and getrefcount's own argument?
            seen["fields_left"] = len(headers)
            seen["other_references"] = sys.getrefcount(field) - 2
            yield "data: one\n\n"

        await EventStreamResponse(events())(scope, receive, send)

    return app


def _open_stream(base_url: str) -> str:
    with httpx.Client(timeout=10) as client:
        return client.get(f"{base_url}/stream", headers={"X-Probe": "p" * 600}).text


def test_the_extension_names_agree() -> None:
    assert OFFERED == RELEASE_HEAD_EXTENSION


def test_under_charter_serve_protocol_an_event_stream_frees_its_request_head() -> None:
    seen: dict[str, Any] = {}
    with serve_app(_stream_app(seen), **limited_http_options()) as base_url:
        assert _open_stream(base_url) == "data: one\n\n"
    assert RELEASE_HEAD_EXTENSION in seen["extensions"]
    assert seen["fields_left"] == 0
    # Neither the scope's list nor the protocol's own (uvicorn's original) still holds it.
    assert seen["other_references"] == 0


def test_under_another_server_the_scope_is_left_as_it_is() -> None:
    seen: dict[str, Any] = {}
    with serve_app(_stream_app(seen), http="httptools") as base_url:
        assert _open_stream(base_url) == "data: one\n\n"
    assert RELEASE_HEAD_EXTENSION not in seen["extensions"]
    assert seen["fields_left"] > 0 and seen["other_references"] == 2  # copy and original
