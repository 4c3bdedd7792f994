"""Limits on what a client may send before its request starts (RFC 9110 §5.4, RFC 6585 §5, S100).

uvicorn's protocols buffer a request head of any size for any time (httptools keeps a header
value being received in memory until it ends), so a few connections sending unterminated
multi-megabyte headers grow a worker without bound. Every worker of ``charter serve`` (one
process or ``--workers N``) therefore runs :class:`LimitedHttpToolsProtocol`: uvicorn's
httptools (llhttp, C) protocol with

- the request head (request line and headers) capped at :data:`MAX_HEADER_BYTES` — a longer
  one gets 400 and the connection closes; what is buffered meanwhile is bounded by the cap plus
  one read from the socket;
- at most :data:`MAX_HEADER_COUNT` header lines — more get 431 Request Header Fields Too Large
  and the connection closes, before any application code runs;
- :data:`HEADER_TIMEOUT_SECONDS` to deliver a whole head, counted from the connection (or from
  the first read of the next request's head on a kept-alive one, whose idle time uvicorn's
  keep-alive timeout bounds) — a slower client is disconnected. A head that arrives in one
  read (nearly all) never arms a timer.

httptools rather than h11: the hot path spends a third of its time in the HTTP parser with h11
(pure Python); llhttp does the same work in C (issue 10).

The protocol also writes each response's head and its body to the socket in one system call
rather than two (:class:`CoalescedWrites`): uvicorn writes the status line and headers as soon
as the application starts its response, and the body when it sends it, which for a JSON answer
is a moment later in the same step of the event loop.

Memory per connection (an open stream holds its connection for hours): the protocol keeps its
own state in one attribute (:class:`_HeadProgress`), and uvicorn's two events per connection
(request body arrival, write flow control) are :class:`LightEvent` objects, which make their
list of waiters only when someone waits (an :class:`asyncio.Event` makes a deque of ~700 B at
once). It also offers the ASGI extension ``charter.release_request_head``
(:data:`RELEASE_HEAD_EXTENSION`): every layer of ``charter serve`` has read the request's
headers before a response starts, so an event stream may empty the header list instead of
keeping ~2 KB per open stream (``resourceserver.mcp.sse_response``).
"""

from __future__ import annotations

import asyncio
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

#: Longest request head accepted, bytes (request line plus headers).
MAX_HEADER_BYTES = 64 * 1024
#: Most header lines accepted in one request.
MAX_HEADER_COUNT = 100
#: Seconds a client has to send a complete request head.
HEADER_TIMEOUT_SECONDS = 10.0

#: The ASGI extension this protocol offers in every scope (the name is the contract between
#: server and application, as ASGI extension names are; the application side is
#: ``resourceserver.mcp.sse_response``).
RELEASE_HEAD_EXTENSION = "charter.release_request_head"

_TOO_MANY = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"connection: close\r\ncontent-length: 24\r\n\r\nToo many request headers"
)


class CoalescedWrites:
    """A transport whose writes within one step of the event loop reach the socket together.

    A write with nothing held is held and a flush is scheduled for the end of the loop's
    step; the next write (a response body after its head) goes out joined to it at once.
    Writes keep their order; ``close`` sends what is held first; what is held when the
    connection has meanwhile been lost is dropped. Everything else is the transport's own.
    """

    __slots__ = ("_flush_scheduled", "_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None
        self._flush_scheduled = False

    def write(self, data: bytes) -> None:
        held = self._held
        if held is None:
            self._held = bytes(data)
            if not self._flush_scheduled:
                self._flush_scheduled = True
                self._loop.call_soon(self._flush)
        else:
            self._held = None
            self._transport.write(held + data)

    def _flush(self) -> None:
        self._flush_scheduled = False
        held = self._held
        if held is not None:
            self._held = None
            # The client may have gone since the write (uvloop raises on a closed handle).
            if not self._transport.is_closing():
                self._transport.write(held)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def get_write_buffer_size(self) -> int:
        held = self._held
        return self._transport.get_write_buffer_size() + (len(held) if held else 0)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class LightEvent:
    """:class:`asyncio.Event`'s ``set``/``clear``/``is_set``/``wait`` without a deque per event."""

    __slots__ = ("_value", "_waiters")

    def __init__(self, value: bool = False) -> None:
        self._value = value
        self._waiters: list[asyncio.Future[bool]] | None = None

    def is_set(self) -> bool:
        return self._value

    def set(self) -> None:
        if not self._value:
            self._value = True
            waiters, self._waiters = self._waiters, None
            for waiter in waiters or ():
                if not waiter.done():
                    waiter.set_result(True)

    def clear(self) -> None:
        self._value = False

    async def wait(self) -> bool:
        if self._value:
            return True
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = [waiter]
        else:
            self._waiters.append(waiter)
        try:
            return await waiter
        finally:
            if self._waiters is not None and waiter in self._waiters:
                self._waiters.remove(waiter)


class _HeadRefused(Exception):
    """Raised inside a parser callback to stop parsing a head that breaks a limit."""


class _HeadProgress:
    """How far the connection's current request head has come."""

    __slots__ = ("head_bytes", "head_lines", "head_timer", "heads_done", "in_head")

    def __init__(self) -> None:
        #: True from the connection (or the end of a head) until the next head is complete.
        self.in_head = True
        self.head_bytes = 0
        self.head_lines = 0
        self.heads_done = 0
        self.head_timer: asyncio.TimerHandle | None = None


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a head size, head line count and head time limit."""

    header_timeout: float = HEADER_TIMEOUT_SECONDS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # One attribute: uvicorn's protocol has 27, and past 30 an instance's attributes stop
        # sharing their keys with the class (its dictionary grows from ~300 B to ~1.6 KB per
        # connection, that is per open stream).
        self._head = _HeadProgress()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        # Every write of the connection (responses, 100 Continue, refusals) goes through it,
        # so that none overtakes one that is held.
        self.transport = CoalescedWrites(self.transport, self.loop)  # type: ignore[assignment]
        if isinstance(getattr(self.flow, "_is_writable_event", None), asyncio.Event):
            self.flow._is_writable_event = LightEvent(True)  # type: ignore[assignment]
        self._start_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        heads_before = self._head.heads_done
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError as exc:
            self._stop_head_timer()
            if isinstance(exc.__context__, _HeadRefused):
                self._refuse(_TOO_MANY)
            else:
                self.logger.warning("Invalid HTTP request received.")
                self.send_400_response("Invalid HTTP request received.")
            return
        if self._head.in_head and not self.transport.is_closing():
            if self._head.heads_done != heads_before:
                self._head.head_bytes = 0  # the chunk finished one head and began the next
            self._head.head_bytes += len(data)
            if self._head.head_bytes > MAX_HEADER_BYTES:
                self._stop_head_timer()
                self.send_400_response("Request head too large.")
            else:
                self._start_head_timer()  # a head split over reads: its time is counted

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope["extensions"] = {RELEASE_HEAD_EXTENSION: {}}
        self._head.in_head = True
        self._head.head_lines = 0

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head.head_lines += 1
        if self._head.head_lines > MAX_HEADER_COUNT:
            raise _HeadRefused
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._head.in_head = False
        self._head.heads_done += 1
        self._head.head_bytes = 0
        self._stop_head_timer()
        super().on_headers_complete()
        # The request's header list now lives in its scope alone (uvicorn reads its own copy
        # again only to decide an upgrade, which it has decided above), so that a stream
        # that empties it (RELEASE_HEAD_EXTENSION) frees the fields.
        self.headers = []
        # The new cycle's body-arrival event (nothing has set it yet).
        if isinstance(self.cycle.message_event, asyncio.Event):
            self.cycle.message_event = LightEvent()  # type: ignore[assignment]

    def _refuse(self, answer: bytes) -> None:
        if not self.transport.is_closing():
            self.transport.write(answer)
            self.transport.close()

    def _start_head_timer(self) -> None:
        if self._head.head_timer is None:
            self._head.head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _stop_head_timer(self) -> None:
        if self._head.head_timer is not None:
            self._head.head_timer.cancel()
            self._head.head_timer = None

    def _head_timed_out(self) -> None:
        self._head.head_timer = None
        if self._head.in_head and not self.transport.is_closing():
            self.transport.close()


def limited_http_options() -> dict[str, Any]:
    """The ``uvicorn.Config`` arguments that apply these limits."""
    return {"http": LimitedHttpToolsProtocol}
