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

_TOO_MANY = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"connection: close\r\ncontent-length: 24\r\n\r\nToo many request headers"
)


class CoalescedWrites:
    """A transport whose writes within one step of the event loop reach the socket together.

    A write with nothing held is held and a flush is scheduled for the end of the loop's
    step; the next write (a response body after its head) goes out joined to it at once.
    Writes keep their order; ``close`` sends what is held first. Everything else is the
    transport's own.
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
            self._transport.write(held)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def get_write_buffer_size(self) -> int:
        held = self._held
        return self._transport.get_write_buffer_size() + (len(held) if held else 0)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _HeadRefused(Exception):
    """Raised inside a parser callback to stop parsing a head that breaks a limit."""


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a head size, head line count and head time limit."""

    header_timeout: float = HEADER_TIMEOUT_SECONDS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: True from the connection (or the end of a head) until the next head is complete.
        self._in_head = True
        self._head_bytes = 0
        self._head_lines = 0
        self._heads_done = 0
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        # Every write of the connection (responses, 100 Continue, refusals) goes through it,
        # so that none overtakes one that is held.
        self.transport = CoalescedWrites(self.transport, self.loop)  # type: ignore[assignment]
        self._start_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        heads_before = self._heads_done
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
        if self._in_head and not self.transport.is_closing():
            if self._heads_done != heads_before:
                self._head_bytes = 0  # the chunk finished one head and began the next
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEADER_BYTES:
                self._stop_head_timer()
                self.send_400_response("Request head too large.")
            else:
                self._start_head_timer()  # a head split over reads: its time is counted

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_lines = 0

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_lines += 1
        if self._head_lines > MAX_HEADER_COUNT:
            raise _HeadRefused
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._heads_done += 1
        self._head_bytes = 0
        self._stop_head_timer()
        super().on_headers_complete()

    def _refuse(self, answer: bytes) -> None:
        if not self.transport.is_closing():
            self.transport.write(answer)
            self.transport.close()

    def _start_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._in_head and not self.transport.is_closing():
            self.transport.close()


def limited_http_options() -> dict[str, Any]:
    """The ``uvicorn.Config`` arguments that apply these limits."""
    return {"http": LimitedHttpToolsProtocol}
