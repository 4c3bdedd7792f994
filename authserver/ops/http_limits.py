"""Limits on what a client may send before its request starts (RFC 9110 §5.4, RFC 6585 §5, S100).

uvicorn's default parser (httptools) buffers a request head of any size for any time, so a few
connections sending unterminated multi-megabyte headers grow a worker without bound. Every
worker of ``charter serve`` (one process or ``--workers N``) therefore runs
:class:`LimitedH11Protocol`: uvicorn's h11 protocol with

- the request head (request line and headers) capped at :data:`MAX_HEADER_BYTES` — h11 refuses
  a longer one with 400 and the connection closes;
- at most :data:`MAX_HEADER_COUNT` header lines — more get 431 Request Header Fields Too Large
  and the connection closes, counted on the raw bytes before they are parsed;
- :data:`HEADER_TIMEOUT_SECONDS` to deliver a whole head, counted from the connection (or the end
  of the previous response on a kept-alive one) — a slower client is disconnected.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

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


class LimitedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a head size, head line count and head time limit."""

    header_timeout: float = HEADER_TIMEOUT_SECONDS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_lines = 0
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self._start_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        receiving_head = self.conn.their_state is h11.IDLE
        if receiving_head:
            self._start_head_timer()
            self._head_lines += data.count(b"\n")
            if self._head_lines > MAX_HEADER_COUNT + 2:  # request line and the blank line
                self._refuse_head()
                return
        super().data_received(data)
        if receiving_head and self.conn.their_state is not h11.IDLE:
            self._head_lines = 0
            self._stop_head_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._head_lines = 0

    def _refuse_head(self) -> None:
        self._stop_head_timer()
        if not self.transport.is_closing():
            self.transport.write(_TOO_MANY)
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
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()


def limited_http_options() -> dict[str, Any]:
    """The ``uvicorn.Config`` arguments that apply these limits."""
    return {"http": LimitedH11Protocol, "h11_max_incomplete_event_size": MAX_HEADER_BYTES}
