"""An open stream holds its wake-ups only while its client is there (MCP 2025-11-25
"Transports" §Listening for Messages from the Server; MCP 2026-07-28 "Subscriptions"; issue 10).

Real uvicorn on a socket, raw client sockets (the benchmark's stream holder): while a GET
stream or a ``subscriptions/listen`` stream is open, the worker's shared watcher, its bus and
its broadcast fan-out know it; once the client closes its socket, the stream ends without any
write from the server (no keep-alive is due) and all of that is released. Server shutdown
still ends open streams (the graceful end of a listen stream answers its request).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bench._streams import RawClient, get_request, listen_request, open_session
from resourceserver.mcp.transport import McpEndpoint, TransportOptions
from tests.resourceserver.mcp.test_tasks import engine_for, tools
from tests.support.modern_mcp import ModernApp, modern_app, on_socket

#: Keep-alives far away: a stream must notice its client left without writing to it.
QUIET = TransportOptions(keepalive_seconds=600, listen_revalidate_seconds=600)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[ModernApp]:
    engine = engine_for(f"sqlite:///{tmp_path / 'charter.db'}")
    try:
        with on_socket(modern_app(tools(), engine, QUIET)) as app:
            yield app
    finally:
        engine.dispose()


async def until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def open_raw(app: ModernApp, request: bytes, marker: bytes) -> asyncio.StreamWriter:
    """Send ``request`` on a fresh socket; return once the answer holds ``marker``."""
    assert app.base_url is not None
    port = int(app.base_url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert b" 200 " in head.split(b"\r\n", 1)[0], head
    assert b"text/event-stream" in head.lower()
    await asyncio.wait_for(reader.readuntil(marker), 10)
    return writer


def held(endpoint: McpEndpoint) -> tuple[int, int, int, int]:
    """(sessions the watcher follows, bus keys waited on, listeners fed, listeners whose
    token the shared watcher re-checks)."""
    return (
        len(endpoint.log.watcher._open),
        len(endpoint.bus._waiters),
        len(endpoint.broadcasts._inboxes),
        len(endpoint.modern.listen_watch),
    )


def test_a_get_stream_is_released_when_its_client_leaves(served: ModernApp) -> None:
    async def scenario() -> None:
        assert served.base_url is not None
        token = served.token()
        client = RawClient("127.0.0.1", int(served.base_url.rsplit(":", 1)[1]))
        try:
            session_id = await open_session(client, token)
        finally:
            client.close()
        writers = [await open_raw(served, get_request("127.0.0.1", 1, token, session_id), b"\n\n")]
        await until(lambda: held(served.endpoint)[0] == 1, "the watcher to follow the stream")
        assert held(served.endpoint)[1] >= 1
        for writer in writers:
            writer.close()
        await until(lambda: held(served.endpoint)[:2] == (0, 0), "the stream to be released")

    asyncio.run(scenario())


def test_a_listen_stream_is_released_when_its_client_leaves(served: ModernApp) -> None:
    async def scenario() -> None:
        token = served.token()
        writers = [
            await open_raw(
                served,
                listen_request("127.0.0.1", 1, token, index),
                b"notifications/subscriptions/acknowledged",
            )
            for index in (1, 2)
        ]
        await until(lambda: held(served.endpoint)[2:] == (2, 2), "two listeners")
        writers[0].close()
        await until(lambda: held(served.endpoint)[2:] == (1, 1), "the first listener to go")
        writers[1].close()
        await until(lambda: held(served.endpoint)[2:] == (0, 0), "the second listener to go")

    asyncio.run(scenario())


def test_shutdown_still_ends_a_listen_stream_with_its_result(served: ModernApp) -> None:
    async def scenario() -> None:
        assert served.base_url is not None
        port = int(served.base_url.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(listen_request("127.0.0.1", port, served.token(), 5))
        await asyncio.wait_for(reader.readuntil(b"acknowledged"), 10)
        watcher = served.endpoint.broadcasts._watcher.task
        assert watcher is not None
        # What the server's drain does, in the server's own thread and loop.
        watcher.get_loop().call_soon_threadsafe(served.endpoint.stopping.set)
        rest = await asyncio.wait_for(reader.readuntil(b"0\r\n\r\n"), 10)
        data = [line for line in rest.split(b"\n") if line.startswith(b"data: ")]
        assert json.loads(data[-1][6:]) == {
            "jsonrpc": "2.0",
            "id": 5,
            "result": {
                "resultType": "complete",
                "_meta": {"io.modelcontextprotocol/subscriptionId": 5},
            },
        }
        writer.close()

    asyncio.run(scenario())
