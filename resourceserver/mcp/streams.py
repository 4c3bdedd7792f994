"""The SSE side of Streamable HTTP (MCP 2025-11-25 "Transports" §Streamable HTTP, SEP-1699).

:class:`RequestStream` is what a handler writes to while it answers one POST: it stays a plain
JSON response until the handler first sends a notification or a request, then becomes an SSE
stream of logged events. Every SSE response, the POST's own (:func:`drain`) as well as a GET's
(standalone or resumed), is served from the log by :func:`replay`, which sends only the events
its connection owns (see :mod:`resourceserver.mcp.claims`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from resourceserver.mcp.claims import Ownership, Verdict, claim_payload
from resourceserver.mcp.codec import dumps_text
from resourceserver.mcp.context import ClientRequestError
from resourceserver.mcp.events import EventLog, StoredEvent, new_stream_id
from resourceserver.mcp.jsonrpc import notification_message, request_message
from resourceserver.mcp.pending import AnswerTimeoutError, PendingRequests
from resourceserver.mcp.wake import Links, Signal, Wake

JsonObject = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Item:
    """The start of the HTTP response: the final JSON answer, or the SSE priming event."""

    message: JsonObject | None
    event_id: str | None = None
    final: bool = False


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
    return dumps_text(message)


def _time_out(future: asyncio.Future[Item]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


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
        #: The first thing to send: the JSON answer, or the priming event once streaming.
        self.queue: asyncio.Queue[Item] = asyncio.Queue()
        #: While :meth:`first` waits: the first item goes here (a future costs no extra task).
        self._first: asyncio.Future[Item] | None = None
        #: True once the final response was queued or logged (or the response was closed).
        self.finished = False
        #: Set when the SSE response must end without a logged final event.
        self.closed = Signal()
        #: The row of the priming event: the POST connection's claim on its stream.
        self.claim = 0
        self._lock = asyncio.Lock()

    async def _open(self) -> None:
        self.stream_id = new_stream_id()
        event_id = await self.log.append(self.session_id, self.stream_id, "", final=False)
        self.claim = StoredEvent(event_id, "", final=False).row
        self._put(Item(None, event_id))

    def _put(self, item: Item) -> None:
        if self._first is not None and not self._first.done():
            self._first.set_result(item)
        else:
            self.queue.put_nowait(item)

    async def first(self, timeout: float) -> Item:
        """The first item, waiting at most ``timeout`` seconds (then TimeoutError; later
        items go to :attr:`queue`)."""
        if not self.queue.empty():
            return self.queue.get_nowait()
        loop = asyncio.get_running_loop()
        first: asyncio.Future[Item] = loop.create_future()
        self._first = first
        # A timer rather than asyncio.wait_for: no extra future and callbacks per request.
        timer = loop.call_later(timeout, _time_out, first)
        try:
            return await first
        finally:
            timer.cancel()

    async def send(self, message: JsonObject, *, final: bool = False) -> None:
        """Queue (or log, once streaming) one message; ``final`` ends the response."""
        async with self._lock:
            if self.stream_id is None:
                if final:
                    self.finished = True
                    self._put(Item(message, final=True))
                    return
                await self._open()
            assert self.stream_id is not None  # noqa: S101 - set by _open
            await self.log.append(self.session_id, self.stream_id, dumps(message), final)
            self.finished = self.finished or final

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
            self._put(Item(fallback, final=True))
        else:
            self.closed.set()
            self.log.bus.notify(self.log.key(self.session_id, self.stream_id))

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
        """End the POST's SSE response; the client resumes the rest with ``Last-Event-ID``."""
        if not self.sse_allowed:
            return
        async with self._lock:
            if self.stream_id is None:
                await self._open()
            assert self.stream_id is not None  # noqa: S101 - set by _open
            # A claim of this POST's own lineage: the POST response ends before it, a resumption
            # of the POST gets everything after it.
            await self.log.append(
                self.session_id, self.stream_id, claim_payload(self.claim), final=False
            )


async def drain(
    first: Item,
    stream: RequestStream,
    stop: asyncio.Event,
    retry_ms: int,
    keepalive: float = 15.0,
) -> AsyncIterator[str]:
    """The SSE body of a POST: the priming event, then its logged events until the final
    response, an early close, a newer connection resuming the stream, or shutdown."""
    if first.event_id is None or stream.stream_id is None:
        return
    yield sse_event(first.event_id, "", retry_ms)
    claim = stream.claim
    async for chunk in replay(
        stream.log,
        stream.session_id,
        stream.stream_id,
        claim,
        Ownership(claim, claim),
        stop,
        keepalive=keepalive,
        retry_ms=retry_ms,
        closed=stream.closed,
    ):
        yield chunk


async def replay(
    log: EventLog,
    session_id: str,
    stream_id: str,
    after: int,
    ownership: Ownership,
    stop: asyncio.Event,
    *,
    keepalive: float = 15.0,
    retry_ms: int | None = None,
    priming: str | None = None,
    closed: asyncio.Event | None = None,
) -> AsyncIterator[str]:
    """The events of one logged stream after row ``after`` that ``ownership`` allows, then new
    ones as they are logged.

    Ends after the final response of a POST stream, when a newer connection claims the stream,
    when the session ends, at shutdown, when ``closed`` is set, or when the client leaves. A
    comment line goes out every ``keepalive`` seconds of silence so that proxies keep the
    connection open while a tool works (or waits for the user).
    """
    if priming is not None:
        yield priming
    key = log.key(session_id, stream_id)
    woken = Wake()  # one wake-up for the bus key, shutdown and the POST's early close
    # Registrations by plain calls: a generator context manager each cost ~500 B per stream.
    log.bus.add(key, woken)
    log.watcher.follow(session_id, stream_id)
    heartbeat = log.heartbeat(keepalive)
    beat = heartbeat.add(woken)  # keep-alives from the shared tick: no timer per stream
    try:
        with Links(woken, stop, closed):
            look = True
            while not stop.is_set():
                if look:
                    woken.clear()
                    events = await log.poll(session_id, stream_id, after)
                    if events is None:
                        return
                    chunks, end = _render(events, ownership, retry_ms)
                    for chunk in chunks:
                        yield chunk
                        beat.sent()
                    if end:
                        return
                    if events:
                        after = events[-1].row
                        continue
                if closed is not None and closed.is_set():
                    return
                if beat.due:
                    beat.sent()
                    yield ": keepalive\n\n"
                # Idle: no query until woken, by a write in this process, PostgreSQL's NOTIFY or
                # the log's shared watcher (every write elsewhere, the session's end); the
                # heartbeat's kick (a keep-alive is due) leaves the flag unset: nothing to read.
                look = await woken.wait()
    finally:
        heartbeat.remove(beat)
        log.watcher.unfollow(session_id, stream_id)
        log.bus.discard(key, woken)


def _render(
    events: list[StoredEvent], ownership: Ownership, retry_ms: int | None
) -> tuple[list[str], bool]:
    """The chunks of ``events`` for this connection up to the one that ends it, and if one does."""
    chunks: list[str] = []
    for event in events:
        chunk, end = _outcome(event, ownership, retry_ms)
        if chunk is not None:
            chunks.append(chunk)
        if end:
            return chunks, True
    return chunks, False


def _outcome(
    event: StoredEvent, ownership: Ownership, retry_ms: int | None
) -> tuple[str | None, bool]:
    """What one logged event becomes on this connection, and whether the connection ends."""
    verdict = ownership.see(event)
    if verdict is Verdict.TAKEN_OVER:
        return None, True
    chunk = None
    if verdict is Verdict.PRIME:
        chunk = sse_event(event.event_id, "", retry_ms)
    elif verdict is Verdict.SEND:
        chunk = sse_event(event.event_id, event.payload)
    # After the final response (sent here or on another connection) nothing follows.
    return chunk, event.final
