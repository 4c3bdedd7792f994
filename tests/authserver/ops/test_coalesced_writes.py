"""Responses leave in one write per loop pass (authserver.ops.http_limits.CoalescedWrites):
order kept, nothing held back at close, and a real uvicorn socket serving keep-alive,
pipelined and streamed responses through it byte for byte (RFC 9112 §9.3)."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from starlette.types import Receive, Scope, Send

from authserver.ops.http_limits import (
    CoalescedWrites,
    LightEvent,
    LimitedHttpToolsProtocol,
    limited_http_options,
)
from tests.support.live import serve_app


class RecordingTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 1) if name == "peername" else default


async def test_a_head_and_its_body_go_out_together_in_order() -> None:
    inner = RecordingTransport()
    writes = CoalescedWrites(inner, asyncio.get_running_loop())  # type: ignore[arg-type]
    writes.write(b"HTTP/1.1 200 OK\r\n\r\n")
    assert inner.writes == [] and writes.get_write_buffer_size() == 19
    writes.write(b"body")
    writes.write(b"more")
    assert inner.writes == [b"HTTP/1.1 200 OK\r\n\r\nbody"]
    await asyncio.sleep(0)
    assert inner.writes == [b"HTTP/1.1 200 OK\r\n\r\nbody", b"more"]
    assert writes.get_extra_info("peername") == ("127.0.0.1", 1)  # the rest is the transport's
    writes.write(b"last words")
    writes.close()
    assert inner.writes[-1] == b"last words" and inner.closed
    await asyncio.sleep(0)
    assert inner.writes.count(b"last words") == 1


async def test_what_is_held_when_the_client_has_gone_is_dropped() -> None:
    inner = RecordingTransport()
    writes = CoalescedWrites(inner, asyncio.get_running_loop())  # type: ignore[arg-type]
    writes.write(b"HTTP/1.1 200 OK\r\n\r\n")
    inner.closed = True  # the connection was lost before the end of the pass
    await asyncio.sleep(0)
    assert inner.writes == []


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for part in (b"one,", b"two,", b"three"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
            await asyncio.sleep(0.01)
        await send({"type": "http.response.body", "body": b""})
        return
    body = path.encode()
    headers = [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _read_all(sock: socket.socket) -> bytes:
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def test_real_socket_keeps_pipelined_and_streamed_responses_whole_and_in_order() -> None:
    with serve_app(app, **limited_http_options()) as base_url:
        port = int(base_url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            paths = [f"/r{index}" for index in range(20)]
            sock.sendall(
                b"".join(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode() for path in paths)
                + b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n"
                + b"GET /end HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            received = _read_all(sock)
    bodies = [part.split(b"\r\n\r\n", 1)[1] for part in received.split(b"HTTP/1.1 200 OK")[1:]]
    assert bodies[:20] == [path.encode() for path in paths]
    assert bodies[20] == b"4\r\none,\r\n4\r\ntwo,\r\n5\r\nthree\r\n0\r\n\r\n"
    assert bodies[21] == b"/end"


async def test_light_events_behave_as_asyncio_events() -> None:
    event = LightEvent()
    assert not event.is_set()
    waiters = [asyncio.ensure_future(event.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    assert not any(waiter.done() for waiter in waiters)
    event.set()
    assert await asyncio.gather(*waiters) == [True, True, True]
    assert await event.wait() is True  # set: no wait
    event.clear()
    cancelled = asyncio.ensure_future(event.wait())
    await asyncio.sleep(0)
    cancelled.cancel()
    await asyncio.sleep(0)
    assert cancelled.cancelled() and not event._waiters  # a cancelled waiter leaves
    assert LightEvent(True).is_set()


def test_connections_keep_a_small_attribute_dictionary() -> None:
    """uvicorn's protocol has 27 attributes; past 30 the instance dictionary of every open
    connection grows from ~300 B to ~1.6 KB (the limits' state is one attribute)."""
    import sys

    from uvicorn.config import Config
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    from uvicorn.server import ServerState

    config = Config(app)
    config.load()
    loop = asyncio.new_event_loop()
    try:
        ours = LimitedHttpToolsProtocol(config, ServerState(), app_state={}, _loop=loop)
        theirs = HttpToolsProtocol(config, ServerState(), app_state={}, _loop=loop)
    finally:
        loop.close()
    assert len(vars(ours)) <= 30
    assert sys.getsizeof(vars(ours)) <= sys.getsizeof(vars(theirs)) + 64
