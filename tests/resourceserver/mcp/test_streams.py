"""Each server message goes out on only one SSE connection (MCP 2025-11-25 "Transports",
Streamable HTTP "Multiple Connections" and "Resumability and Redelivery").

Real sockets, real uvicorn, and a SQLite file or a PostgreSQL database shared by up to two app
instances (workers) and a third worker that publishes. The newest GET stream of a session takes
over and the older one ends; a resumption gets what its own connection missed, once, and never
what went out on another connection; a POST stream resumed by a GET ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, create_engine
from starlette.responses import Response

from resourceserver.mcp import Context, Registry
from resourceserver.mcp.sessions import SessionStore
from resourceserver.mcp.transport import STANDALONE_STREAM, McpEndpoint, TransportOptions
from resourceserver.storage import Database, create_tables, metadata, sqlite_engine
from tests.resourceserver.mcp.test_transport import (
    FAST,
    call,
    connect,
    events,
    message,
    streaming_tools,
)
from tests.support.mcp_harness import McpHttp, RunningServer, database, serve

#: Generous: a stream on another worker notices a claim by polling (at most once a second).
DEADLINE = 30.0


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def shared(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Engine, Engine]]:
    """Two engines on one database: a SQLite file, or fresh tables in PostgreSQL."""
    if request.param == "sqlite":
        path = tmp_path / "shared.db"
        engine_a = database(path)
        engine_b = sqlite_engine(str(path))
        yield engine_a, engine_b
        engine_b.dispose()
        engine_a.dispose()
        return
    url: str = request.getfixturevalue("postgres_resource_url")
    engine_a = create_engine(url)
    engine_b = create_engine(url)
    metadata.drop_all(engine_a)
    create_tables(engine_a)
    try:
        yield engine_a, engine_b
    finally:
        engine_b.dispose()
        metadata.drop_all(engine_a)
        engine_a.dispose()


@contextlib.contextmanager
def two_servers(engines: tuple[Engine, Engine]) -> Iterator[tuple[RunningServer, RunningServer]]:
    with (
        serve(streaming_tools(), engines[0], FAST) as a,
        serve(streaming_tools(), engines[1], FAST) as b,
    ):
        yield a, b


@contextlib.asynccontextmanager
async def publisher(engine: Engine) -> AsyncIterator[McpEndpoint]:
    """A third worker on the shared database that only publishes (like a background job)."""
    endpoint = McpEndpoint(
        registry=Registry(),
        database=Database(engine),
        forbidden=lambda _error: Response(status_code=403),
        base_scope="mcp",
        options=FAST,
    )
    try:
        yield endpoint
    finally:
        await endpoint.aclose()


async def publish(endpoint: McpEndpoint, session: str | None, text: str) -> None:
    assert session is not None
    params = {"level": "info", "data": text}
    await endpoint.publish(
        session, {"jsonrpc": "2.0", "method": "notifications/message", "params": params}
    )


def joined(mcp: McpHttp, server: RunningServer) -> McpHttp:
    """The same client and session, talking to another app instance."""
    other = McpHttp(mcp.client, server.url, server.token())
    other.session = mcp.session
    return other


class Listener:
    """One GET stream read in the background: its events as they arrive, and how it ended."""

    def __init__(self, mcp: McpHttp, last_event_id: str | None = None) -> None:
        headers = {**mcp.headers(), "Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        self.events: list[dict[str, str]] = []
        self.status: int | None = None
        self.error: Exception | None = None
        self.ended = asyncio.Event()
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._read(mcp, headers))

    @classmethod
    async def open(cls, mcp: McpHttp, last_event_id: str | None = None) -> Listener:
        """Open a stream and wait for its priming event (its claim is then in the log)."""
        listener = cls(mcp, last_event_id)
        await listener.until(lambda: any("retry" in e for e in listener.events), "priming event")
        return listener

    async def _read(self, mcp: McpHttp, headers: dict[str, str]) -> None:
        try:
            async with mcp.client.stream("GET", mcp.url, headers=headers) as response:
                self.status = response.status_code
                async for event in events(response):
                    self.events.append(event)
                    self._changed.set()
        except Exception as exc:  # reported by the assertions
            self.error = exc
        finally:
            self.ended.set()
            self._changed.set()

    @property
    def notes(self) -> list[str]:
        """The ``data`` of every log message received."""
        found = [message(e) for e in self.events]
        return [m["params"]["data"] for m in found if m and m.get("method")]

    def event_id_of(self, note: str) -> str:
        for event in self.events:
            found = message(event)
            if found and found.get("params", {}).get("data") == note:
                return event["id"]
        raise AssertionError(f"{note!r} not received")

    async def until(self, predicate: Callable[[], bool], what: str) -> None:
        """Wait (up to DEADLINE) until ``predicate`` holds; fail if the stream ends first."""
        async with asyncio.timeout(DEADLINE):
            while not predicate():
                if self.ended.is_set():
                    raise AssertionError(f"stream ended before {what}: {self.events} {self.error}")
                self._changed.clear()
                await self._changed.wait()

    async def ended_cleanly(self) -> bool:
        """Wait for the server to end the stream; True if it was a clean end of a 200."""
        async with asyncio.timeout(DEADLINE):
            await self.ended.wait()
        return self.status == 200 and self.error is None

    async def drop(self) -> None:
        """The client goes away (the connection closes)."""
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def takeover_delivers_each_message_once(
    old_side: McpHttp, new_side: McpHttp, worker: McpEndpoint
) -> None:
    """Messages published while a second GET takes over arrive once, on one of the streams."""
    session = old_side.session
    old = await Listener.open(old_side)
    await publish(worker, session, "before")
    await old.until(lambda: "before" in old.notes, "'before'")

    racing = [f"race-{n}" for n in range(20)]
    publishing = asyncio.gather(*(publish(worker, session, text) for text in racing))
    new = await Listener.open(new_side)
    await publishing
    assert await old.ended_cleanly(), (old.status, old.error)

    await publish(worker, session, "after")
    await new.until(lambda: "after" in new.notes, "'after'")
    everything = Counter(old.notes + new.notes)
    assert everything == Counter(["before", *racing, "after"]), everything
    assert "after" not in old.notes
    await new.drop()


async def test_second_get_stream_takes_over_each_message_on_one_stream(
    shared: tuple[Engine, Engine],
) -> None:
    with serve(streaming_tools(), shared[0], FAST) as server:
        async with httpx.AsyncClient(timeout=60) as client, publisher(shared[0]) as worker:
            mcp = await connect(server, client)
            await takeover_delivers_each_message_once(mcp, mcp, worker)


async def test_get_stream_on_another_worker_takes_over(shared: tuple[Engine, Engine]) -> None:
    with two_servers(shared) as (a, b):
        async with httpx.AsyncClient(timeout=60) as client, publisher(shared[1]) as worker:
            on_a = await connect(a, client)
            await takeover_delivers_each_message_once(on_a, joined(on_a, b), worker)


async def test_resumption_after_a_drop_gets_missed_messages_once(
    shared: tuple[Engine, Engine],
) -> None:
    with two_servers(shared) as (a, b):
        async with httpx.AsyncClient(timeout=60) as client, publisher(shared[0]) as worker:
            on_a = await connect(a, client)
            on_b = joined(on_a, b)
            first = await Listener.open(on_a)
            await publish(worker, on_a.session, "one")
            await first.until(lambda: "one" in first.notes, "'one'")
            last_seen = first.event_id_of("one")
            await first.drop()

            await publish(worker, on_a.session, "two")
            await publish(worker, on_a.session, "three")
            resumed = await Listener.open(on_b, last_event_id=last_seen)
            await publish(worker, on_a.session, "four")
            await resumed.until(lambda: "four" in resumed.notes, "'four'")
            assert resumed.notes == ["two", "three", "four"]
            assert first.notes == ["one"]
            await resumed.drop()

            beyond = {**on_b.headers(), "Accept": "text/event-stream"}
            beyond["Last-Event-ID"] = f"{STANDALONE_STREAM}.999999999"
            refused = await client.get(on_b.url, headers=beyond)
            assert refused.status_code == 400
            assert "without it" in refused.text


async def test_resumption_never_replays_what_went_out_on_another_stream(
    shared: tuple[Engine, Engine],
) -> None:
    with two_servers(shared) as (a, b):
        async with httpx.AsyncClient(timeout=60) as client, publisher(shared[0]) as worker:
            on_a = await connect(a, client)
            on_b = joined(on_a, b)
            first = await Listener.open(on_a)
            await publish(worker, on_a.session, "one")
            await first.until(lambda: "one" in first.notes, "'one'")
            second = await Listener.open(on_b)
            assert await first.ended_cleanly()
            await publish(worker, on_a.session, "two")
            await second.until(lambda: "two" in second.notes, "'two'")

            # The first stream's client comes back: it takes over, without "two".
            resumed = await Listener.open(on_a, last_event_id=first.event_id_of("one"))
            assert await second.ended_cleanly()
            await publish(worker, on_a.session, "three")
            await resumed.until(lambda: "three" in resumed.notes, "'three'")
            assert resumed.notes == ["three"]
            assert (first.notes, second.notes) == (["one"], ["two"])
            await resumed.drop()


async def test_get_resuming_an_open_post_stream_ends_the_post(
    shared: tuple[Engine, Engine],
) -> None:
    with two_servers(shared) as (a, b):
        async with httpx.AsyncClient(timeout=60) as client:
            on_a = await connect(a, client)
            on_b = joined(on_a, b)
            on_post: list[dict[str, Any] | None] = []
            request = client.stream(
                "POST", on_a.url, json=call(7, "ask_user"), headers=on_a.headers()
            )
            async with asyncio.timeout(DEADLINE), request as response:
                received = events(response)
                assert (await anext(received))["data"] == ""
                asked = await anext(received)
                elicitation = message(asked)
                assert elicitation is not None and elicitation["method"] == "elicitation/create"
                resumed = await Listener.open(on_b, last_event_id=asked["id"])
                on_post = [message(e) async for e in received]  # the POST stream ends
            assert on_post == []

            reply = {"jsonrpc": "2.0", "id": elicitation["id"], "result": {"action": "cancel"}}
            assert (await on_b.post(reply)).status_code == 202
            assert await resumed.ended_cleanly()
            answers = [m for m in map(message, resumed.events) if m and m.get("id") == 7]
            assert len(answers) == 1
            assert answers[0]["result"]["content"][0]["text"] == "user said: cancel null"


async def test_open_stream_survives_the_purge_of_old_events(shared: tuple[Engine, Engine]) -> None:
    """SQLite numbers a new row one past the largest id left: once every old event is purged, new
    events must still come after an open stream's position, or it would skip them and a new GET
    could not take it over."""
    with serve(streaming_tools(), shared[0], FAST) as server:
        async with httpx.AsyncClient(timeout=60) as client, publisher(shared[1]) as worker:
            mcp = await connect(server, client)
            old = await Listener.open(mcp)
            await publish(worker, mcp.session, "one")
            await old.until(lambda: "one" in old.notes, "'one'")
            an_hour_later = SessionStore(
                Database(shared[1]), ttl_seconds=60.0, clock=lambda: time.time() + 120.0
            )
            assert await an_hour_later.purge_expired() == 0  # the session itself lives on

            await publish(worker, mcp.session, "two")
            await old.until(lambda: "two" in old.notes, "'two' after the purge")
            new = await Listener.open(mcp)
            assert await old.ended_cleanly()
            await publish(worker, mcp.session, "three")
            await new.until(lambda: "three" in new.notes, "'three'")
            assert (old.notes, new.notes) == (["one", "two"], ["three"])
            await new.drop()


async def test_concurrent_publishers_reach_an_open_stream_once_each(
    shared: tuple[Engine, Engine],
) -> None:
    """A session's events become visible in id order even when workers write at once
    (PostgreSQL hands out ids before commit), so a stream that read past an id never misses a
    smaller one committed later."""
    with serve(streaming_tools(), shared[0], FAST) as server:
        async with (
            httpx.AsyncClient(timeout=60) as client,
            publisher(shared[0]) as one,
            publisher(shared[1]) as two,
        ):
            mcp = await connect(server, client)
            listener = await Listener.open(mcp)
            texts = [f"m{n}" for n in range(120)]
            await asyncio.gather(
                *(publish((one, two)[n % 2], mcp.session, text) for n, text in enumerate(texts))
            )
            await listener.until(lambda: len(listener.notes) >= len(texts), "every message")
            assert Counter(listener.notes) == Counter(texts)
            await listener.drop()


async def test_post_stream_gets_every_event_of_a_chatty_tool_without_polling(
    shared: tuple[Engine, Engine],
) -> None:
    """A POST's SSE response is read from the log; events written by its own worker wake it at
    once, none of those wake-ups is lost (polling is all but off here: a lost one would stall
    the stream for ten minutes)."""
    registry = streaming_tools()

    @registry.tool()
    async def chatty(ctx: Context, count: int) -> str:
        """Logs ``count`` messages, then answers."""
        for n in range(count):
            await ctx.log("info", f"n{n}")
        return "done"

    no_polling = TransportOptions(poll_interval=600.0, retry_ms=500)
    with serve(registry, shared[0], no_polling) as server:
        async with httpx.AsyncClient(timeout=60) as client:
            mcp = await connect(server, client)
            request = client.stream(
                "POST", mcp.url, json=call(3, "chatty", {"count": 150}), headers=mcp.headers()
            )
            async with asyncio.timeout(DEADLINE), request as response:
                received = [message(e) async for e in events(response)]
    notes = [m["params"]["data"] for m in received if m and m.get("method")]
    assert notes == [f"n{n}" for n in range(150)]
    final = received[-1]
    assert final is not None and final["result"]["content"][0]["text"] == "done"
