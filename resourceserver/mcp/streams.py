"""The SSE side of Streamable HTTP (MCP 2025-11-25 "Transports" §Streamable HTTP, SEP-1699).

:class:`RequestStream` is what a handler writes to while it answers one POST: it stays a plain
JSON response until the handler first sends a notification or a request, then becomes an SSE
stream whose events are also logged for ``Last-Event-ID`` resumption. :func:`replay` serves a
resumed or standalone GET stream from the log.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from resourceserver.mcp.context import ClientRequestError
from resourceserver.mcp.events import EventLog, new_stream_id
from resourceserver.mcp.jsonrpc import notification_message, request_message
from resourceserver.mcp.pending import AnswerTimeoutError, PendingRequests

JsonObject = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Item:
    """One thing for the HTTP response: an event, the final JSON answer, or "close now"."""

    message: JsonObject | None
    event_id: str | None = None
    final: bool = False
    close: bool = False


def sse_event(event_id: str | None, data: str, retry_ms: int | None = None) -> str:
    """One ``text/event-stream`` event (WHATWG HTML §9.2)."""
    lines = []
    if event_id is not None:
        lines.append(f"id: {event_id}")
    if retry_ms is not None:
        lines.append(f"retry: {retry_ms}")
    if data:
        lines.append("event: message")
    lines.extend(f"data: {line}" for line in data.split("\n"))
    return "\n".join(lines) + "\n\n"


def dumps(message: JsonObject) -> str:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"))


class RequestStream:
    """The :class:`~resourceserver.mcp.context.Channel` of one POSTed request."""

    def __init__(
        self,
        *,
        log: EventLog,
        pending: PendingRequests,
        session_id: str,
        sse_allowed: bool,
    ) -> None:
        self.log = log
        self.pending = pending
        self.session_id = session_id
        self.sse_allowed = sse_allowed
        self.stream_id: str | None = None
        self.queue: asyncio.Queue[Item] = asyncio.Queue()
        #: True once the final response (or a final close) was queued.
        self.finished = False
        self._lock = asyncio.Lock()

    async def _open(self) -> None:
        self.stream_id = new_stream_id()
        event_id = await self.log.append(self.session_id, self.stream_id, "", final=False)
        self.queue.put_nowait(Item(None, event_id))

    async def send(self, message: JsonObject, *, final: bool = False) -> None:
        """Queue (and log, once streaming) one message; ``final`` ends the response."""
        async with self._lock:
            if self.stream_id is None:
                if final:
                    self.finished = True
                    self.queue.put_nowait(Item(message, final=True))
                    return
                await self._open()
            assert self.stream_id is not None  # noqa: S101 - set by _open
            payload = dumps(message)
            event_id = await self.log.append(self.session_id, self.stream_id, payload, final)
            self.finished = self.finished or final
            self.queue.put_nowait(Item(message, event_id, final=final))

    async def upgrade(self) -> None:
        """Turn a slow JSON answer into an SSE stream (keep-alives, resumable)."""
        async with self._lock:
            if self.stream_id is None and not self.finished and self.sse_allowed:
                await self._open()

    def finish(self, fallback: JsonObject) -> None:
        """End the HTTP response if the handler did not: ``fallback`` as JSON, or close the SSE."""
        if self.finished:
            return
        self.finished = True
        if self.stream_id is None:
            self.queue.put_nowait(Item(fallback, final=True))
        else:
            self.queue.put_nowait(Item(None, close=True))

    async def notify(self, method: str, params: JsonObject) -> None:
        if self.sse_allowed:
            await self.send(notification_message(method, params))

    async def request(self, method: str, params: JsonObject) -> JsonObject:
        if not self.sse_allowed:
            raise ClientRequestError(
                f"cannot send {method}: the client does not accept text/event-stream responses"
            )
        request_id = await self.pending.create(self.session_id, method)
        await self.send(request_message(request_id, method, params))
        try:
            body = await self.pending.wait(request_id)
        except AnswerTimeoutError as exc:
            raise ClientRequestError(f"the client did not answer {method} in time") from exc
        error = body.get("error")
        if isinstance(error, dict):
            raise ClientRequestError(
                f"the client refused {method}: {error.get('message', 'error')} "
                f"(code {error.get('code')})"
            )
        result = body.get("result")
        return result if isinstance(result, dict) else {}

    async def close_stream(self) -> None:
        if not self.sse_allowed:
            return
        async with self._lock:
            if self.stream_id is None:
                await self._open()
            self.queue.put_nowait(Item(None, close=True))


async def drain(
    first: Item, stream: RequestStream, stop: asyncio.Event, retry_ms: int, keepalive: float = 15.0
) -> AsyncIterator[str]:
    """The SSE body of a POST: events until the final response, a close, or shutdown.

    A comment line goes out every ``keepalive`` seconds of silence so that proxies keep the
    connection open while a tool works (or waits for the user).
    """
    item: Item | None = first
    while item is not None:
        if item.close:
            return
        if item.message is None:
            yield sse_event(item.event_id, "", retry_ms)
        else:
            yield sse_event(item.event_id, dumps(item.message))
        if item.final:
            return
        item = await _next(stream.queue, stop, keepalive)
        while item is KEEPALIVE:
            yield ": keepalive\n\n"
            item = await _next(stream.queue, stop, keepalive)


#: Returned by :func:`_next` when nothing happened for a while.
KEEPALIVE = Item(None)


async def _next(queue: asyncio.Queue[Item], stop: asyncio.Event, timeout: float) -> Item | None:
    """The next item, KEEPALIVE after ``timeout`` seconds, or None at shutdown."""
    getter = asyncio.ensure_future(queue.get())
    stopper = asyncio.ensure_future(stop.wait())
    try:
        done, _ = await asyncio.wait(
            {getter, stopper}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        getter.cancel()
        stopper.cancel()
    if getter in done and not getter.cancelled():
        return getter.result()
    return None if stopper in done else KEEPALIVE


async def replay(
    log: EventLog,
    session_id: str,
    stream_id: str,
    after: int,
    stop: asyncio.Event,
    *,
    poll_interval: float,
    keepalive: float = 15.0,
    priming: str | None = None,
) -> AsyncIterator[str]:
    """Events of one logged stream after ``after``, then new ones as they are logged.

    Ends after the final response of a POST stream, when the session ends, at shutdown, or
    when the client leaves.
    """
    if priming is not None:
        yield priming
    idle = 0.0
    interval = poll_interval
    key = log.key(session_id, stream_id)
    while not stop.is_set():
        events = await log.poll(session_id, stream_id, after)
        if events is None:
            return
        for event in events:
            after = int(event.event_id.rpartition(".")[2])
            yield sse_event(event.event_id, event.payload)
            if event.final:
                return
        if events:
            idle, interval = 0.0, poll_interval
            continue
        # Idle streams poll less and less often (up to once a second); an event written in
        # this process wakes them at once.
        await log.bus.wait(key, interval)
        idle += interval
        interval = min(interval * 2, max(poll_interval, 1.0))
        if idle >= keepalive:
            idle = 0.0
            yield ": keepalive\n\n"
