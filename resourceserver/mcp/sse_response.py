"""The HTTP response of a long-lived SSE stream (WHATWG HTML §9.2 "Server-sent events"; MCP
2025-11-25 "Transports" §Streamable HTTP; MCP 2026-07-28 "Subscriptions"; ASGI HTTP spec
§Disconnect).

Starlette's :class:`~starlette.responses.StreamingResponse` under an ASGI 2.3 server (uvicorn)
runs the body in an anyio task group with a second task that waits for the client to leave:
a task group, a cancel scope, two extra tasks and their frames per open stream.
:class:`EventStreamResponse` sends the same head and body from the request's own task and
waits for the disconnect with a single ``receive()`` future; when the client leaves it
cancels the body where it waits (its ``finally`` blocks run, as under Starlette) and returns
normally. Its head is the one :class:`StreamingResponse` sends (``text/event-stream;
charset=utf-8`` and the given headers).

A stream may stay open for hours, and the request's header list (a tuple and two byte strings
per field, the bearer token among them: about 2 KB) would stay with it in the scope and in the
server's protocol object. When the server offers the ASGI extension
:data:`RELEASE_HEAD_EXTENSION` (``charter serve``'s protocol does, because every layer it runs
has read the headers by the time a response starts), the list is emptied in place as the
stream starts. Without the extension (Charter mounted in someone else's app, whose middleware
may read the headers after the response) the scope is left as it is.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping

from starlette.responses import StreamingResponse
from starlette.types import Message, Receive, Scope, Send

#: ASGI extension (``scope["extensions"]``) by which a server says that the application may
#: empty the request's header list once its response starts.
RELEASE_HEAD_EXTENSION = "charter.release_request_head"


class EventStreamResponse(StreamingResponse):
    """A ``text/event-stream`` response served without an extra task group."""

    body_iterator: AsyncIterator[str | bytes]

    def __init__(
        self, content: AsyncIterator[str | bytes], headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(content, media_type="text/event-stream", headers=headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        release_request_head(scope)
        task = asyncio.current_task()
        assert task is not None  # noqa: S101 - called from a task by every ASGI server
        watch = _Disconnect(task, receive)
        try:
            await self.stream_response(send)
        except asyncio.CancelledError:
            # Ours (the client left) is absorbed; any other cancellation goes on.
            if not watch.left or task.uncancel() > 0:
                raise
        finally:
            watch.stop()
            await _close(self.body_iterator)


def release_request_head(scope: Scope) -> None:
    """Empty the scope's header list in place when the server offers
    :data:`RELEASE_HEAD_EXTENSION` (see the module docstring); else leave it."""
    extensions = scope.get("extensions")
    if extensions and RELEASE_HEAD_EXTENSION in extensions:
        headers = scope.get("headers")
        if isinstance(headers, list):
            headers.clear()


class _Disconnect:
    """Reads ``receive`` until ``http.disconnect``, then cancels ``task`` (the response)."""

    __slots__ = ("left", "pending", "receive", "task")

    def __init__(self, task: asyncio.Task[object], receive: Receive) -> None:
        self.task = task
        self.receive = receive
        self.left = False
        self.pending: asyncio.Future[Message] | None = None
        self._next()

    def _next(self) -> None:
        self.pending = asyncio.ensure_future(self.receive())
        self.pending.add_done_callback(self._got)

    def _got(self, future: asyncio.Future[Message]) -> None:
        if future.cancelled():
            return
        if future.exception() is None and future.result().get("type") != "http.disconnect":
            self._next()  # the (empty) request body: keep waiting for the disconnect
            return
        self.left = True
        self.task.cancel()

    def stop(self) -> None:
        if self.pending is not None and not self.pending.done():
            self.pending.remove_done_callback(self._got)
            self.pending.cancel()


async def _close(body: AsyncIterator[str | bytes]) -> None:
    closer = getattr(body, "aclose", None)
    if closer is not None:
        await closer()
