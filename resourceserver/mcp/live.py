"""The response to one 2026-07-28 request: one JSON object, or an SSE stream of the request's
notifications followed by its response.

MCP 2026-07-28 "Streamable HTTP" §Receiving Messages and §Cancellation: the stream is scoped
to the request, not resumable (no event ids), ends with the response, and closing it cancels
the request. Nothing is stored: the handler runs in this worker and writes to an in-memory
queue. A response that is ready within ``json_wait`` seconds, before any notification, goes
out as JSON; otherwise the response becomes an SSE stream (keep-alive comments every
``keepalive`` seconds of silence) as soon as the first notification or the wait ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable
from typing import Any

from starlette.responses import Response, StreamingResponse

from resourceserver.mcp.codec import dumps_bytes

JsonObject = dict[str, Any]
#: A response message and the HTTP status it gets when sent as a JSON body.
Reply = tuple[JsonObject, int]
logger = logging.getLogger(__name__)

SSE_HEADERS = {"Cache-Control": "no-cache, no-transform", "X-Accel-Buffering": "no"}


def dumps(message: JsonObject) -> bytes:
    return dumps_bytes(message)


def sse(message: JsonObject) -> bytes:
    """One SSE event without an id (2026-07-28 streams are not resumable)."""
    return b"event: message\ndata: " + dumps(message) + b"\n\n"


class JsonBody(Response):
    """A JSON response from an already built message (no re-validation, one ``dumps``)."""

    media_type = "application/json"

    def __init__(
        self,
        message: JsonObject,
        status_code: int = 200,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(dumps(message), status_code=status_code, headers=headers)


def _expire(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_result(None)


class LiveResponse:
    """Carries what one handler sends until its final message."""

    def __init__(self, fallback: JsonObject, *, json_wait: float, keepalive: float) -> None:
        #: Sent when the work fails instead of returning its message (a bug).
        self.fallback = fallback
        self.json_wait = json_wait
        self.keepalive = keepalive
        #: (message, final, HTTP status when it is sent as JSON); made when a second item
        #: comes (most requests send one message: the response).
        self._queue: asyncio.Queue[tuple[JsonObject, bool, int]] | None = None
        #: The first item, as a future: waiting on it costs no extra task (the hot path).
        self._first: asyncio.Future[tuple[JsonObject, bool, int] | None] | None = None

    @property
    def queue(self) -> asyncio.Queue[tuple[JsonObject, bool, int]]:
        if self._queue is None:
            self._queue = asyncio.Queue()
        return self._queue

    def _put(self, item: tuple[JsonObject, bool, int]) -> None:
        if self._first is not None and not self._first.done():
            self._first.set_result(item)
        else:
            self.queue.put_nowait(item)

    async def notify(self, method: str, params: JsonObject) -> None:
        """Queue a notification related to the request."""
        self._put(({"jsonrpc": "2.0", "method": method, "params": params}, False, 200))

    def finish(self, message: JsonObject, status: int = 200) -> None:
        """Queue the final message (the response)."""
        self._put((message, True, status))

    async def respond(self, work: Awaitable[Reply]) -> Response:
        """Run ``work`` (which returns the response message and its status) and answer with
        what it sends."""
        loop = asyncio.get_running_loop()
        self._first = first_item = loop.create_future()
        task = asyncio.ensure_future(work)
        task.add_done_callback(self._on_done)
        # A timer that answers the wait with None, rather than asyncio.wait_for (which costs
        # a future, a callback and a cancellation dance per request on Python 3.11).
        timer = loop.call_later(self.json_wait, _expire, first_item)
        try:
            item = await first_item
        except BaseException:
            task.cancel()
            raise
        finally:
            timer.cancel()
        if item is None:
            return self._stream(task, None)
        first, final, status = item
        if final:
            return JsonBody(first, status)
        return self._stream(task, first)

    def _on_done(self, task: asyncio.Future[Reply]) -> None:
        if task.cancelled():
            return
        failure = task.exception()
        if failure is None:
            self.finish(*task.result())
        else:
            logger.error("MCP request failed outside its handler", exc_info=failure)
            self.finish(self.fallback)

    def _stream(self, task: asyncio.Future[Reply], first: JsonObject | None) -> Response:
        return StreamingResponse(
            self._events(task, first), media_type="text/event-stream", headers=SSE_HEADERS
        )

    async def _events(
        self, task: asyncio.Future[Reply], first: JsonObject | None
    ) -> AsyncIterator[bytes]:
        try:
            if first is not None:
                yield sse(first)
            while True:
                try:
                    message, final, _ = await asyncio.wait_for(self.queue.get(), self.keepalive)
                except TimeoutError:
                    yield b": keepalive\n\n"
                    continue
                yield sse(message)
                if final:
                    return
        finally:
            # The client closed the stream (or the response ended): cancel the request.
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
