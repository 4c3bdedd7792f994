"""Streamable HTTP over a real socket: server-to-client requests, resumption, cancellation,
and two app instances sharing one SQLite database (horizontal scaling)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, create_engine

from resourceserver.mcp import Context, Registry
from resourceserver.mcp.transport import TransportOptions
from resourceserver.storage import create_tables, metadata, sqlite_engine
from tests.support.mcp_harness import McpHttp, RunningServer, database, serve

SAMPLING: dict[str, Any] = {"sampling": {}, "elicitation": {}, "roots": {}}
FAST = TransportOptions(poll_interval=0.05, retry_ms=500)


def streaming_tools() -> Registry:
    registry = Registry()

    @registry.tool()
    async def ask_model(ctx: Context, question: str) -> str:
        """Asks the client's model."""
        reply = await ctx.sample(question, max_tokens=20)
        return f"model said: {reply['content']['text']}"

    @registry.tool()
    async def ask_user(ctx: Context) -> str:
        """Asks the user."""
        answer = await ctx.elicit("Your name?", {"type": "object", "properties": {}})
        return f"user said: {answer['action']} {json.dumps(answer.get('content'))}"

    @registry.tool()
    async def roots(ctx: Context) -> list[str]:
        """Lists the client's roots."""
        return [root["uri"] for root in await ctx.list_roots()]

    @registry.tool()
    async def hang_up(ctx: Context) -> str:
        """Closes its stream, then answers."""
        await ctx.log("info", "before close")
        await ctx.close_stream()
        await asyncio.sleep(0.3)
        await ctx.log("info", "after close")
        return "finished after reconnect"

    @registry.tool()
    async def sleepy(ctx: Context) -> str:
        """Sleeps a long time unless cancelled."""
        await ctx.log("info", "sleeping")
        await asyncio.sleep(30)
        return "woke up"

    return registry


async def events(response: httpx.Response) -> AsyncIterator[dict[str, str]]:
    """SSE events as they arrive."""
    event: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line == "":
            if event:
                yield event
            event = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            event[name] = value.removeprefix(" ")
    if event:
        yield event


def message(event: dict[str, str]) -> dict[str, Any] | None:
    data = event.get("data", "")
    return json.loads(data) if data else None


@pytest.fixture
def running(tmp_path: Path) -> Iterator[RunningServer]:
    with serve(streaming_tools(), database(tmp_path / "rs.db"), FAST) as server:
        yield server


async def connect(server: RunningServer, client: httpx.AsyncClient) -> McpHttp:
    mcp = McpHttp(client, server.url, server.token())
    await mcp.initialize(capabilities=SAMPLING)
    return mcp


def call(request_id: int, name: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
    params = {"name": name, "arguments": arguments or {}}
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}


async def call_answering(
    caller: McpHttp, answerer: McpHttp, name: str, arguments: dict[str, Any], answer: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Call a tool on ``caller``'s server; answer its request to the client via ``answerer``."""
    seen_request: dict[str, Any] = {}
    async with asyncio.timeout(15):
        request = caller.client.stream(
            "POST", caller.url, json=call(5, name, arguments), headers=caller.headers()
        )
        async with request as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            async for event in events(response):
                msg = message(event)
                if msg is None:
                    continue
                if "method" in msg and "id" in msg:
                    seen_request = msg
                    reply = {"jsonrpc": "2.0", "id": msg["id"], "result": answer}
                    posted = await answerer.post(reply)
                    assert posted.status_code == 202
                elif msg.get("id") == 5:
                    return seen_request, msg
    raise AssertionError("the stream ended without a response")


async def cancel_sleepy_once_it_logs(
    caller: McpHttp, canceller: McpHttp, request_id: int, cancel: dict[str, Any]
) -> list[dict[str, Any] | None]:
    """Every message of a ``sleepy`` call on ``caller``'s stream until it ends.

    At the tool's first log message, ``canceller`` sends ``notifications/cancelled`` (``cancel``).
    """
    received = []
    async with (
        asyncio.timeout(10),
        caller.client.stream(
            "POST", caller.url, json=call(request_id, "sleepy"), headers=caller.headers()
        ) as response,
    ):
        async for event in events(response):
            msg = message(event)
            received.append(msg)
            if msg and msg.get("method") == "notifications/message":
                sent = await canceller.notify("notifications/cancelled", cancel)
                assert sent.status_code == 202
    return received


async def test_sampling_request_answered_by_later_post(running: RunningServer) -> None:
    async with httpx.AsyncClient(timeout=20) as client:
        mcp = await connect(running, client)
        answer = {
            "role": "assistant",
            "content": {"type": "text", "text": "forty-two"},
            "model": "m",
            "stopReason": "endTurn",
        }
        request, response = await call_answering(
            mcp, mcp, "ask_model", {"question": "meaning?"}, answer
        )
        assert request["method"] == "sampling/createMessage"
        assert request["params"]["messages"][0]["content"]["text"] == "meaning?"
        assert request["params"]["maxTokens"] == 20
        assert response["result"]["content"][0]["text"] == "model said: forty-two"


async def test_elicitation_refusal_reaches_tool(running: RunningServer) -> None:
    async with httpx.AsyncClient(timeout=20) as client:
        mcp = await connect(running, client)
        request, response = await call_answering(mcp, mcp, "ask_user", {}, {"action": "decline"})
        assert request["method"] == "elicitation/create"
        assert response["result"]["content"][0]["text"] == "user said: decline null"


async def test_roots_list_answered(running: RunningServer) -> None:
    async with httpx.AsyncClient(timeout=20) as client:
        mcp = await connect(running, client)
        roots = {"roots": [{"uri": "file:///work", "name": "work"}]}
        request, response = await call_answering(mcp, mcp, "roots", {}, roots)
        assert request["method"] == "roots/list"
        assert response["result"]["structuredContent"] == {"result": ["file:///work"]}


async def test_sampling_without_client_capability_is_error_result(running: RunningServer) -> None:
    async with httpx.AsyncClient(timeout=20) as client:
        mcp = McpHttp(client, running.url, running.token())
        await mcp.initialize(capabilities={})
        result = (
            await mcp.call("tools/call", {"name": "ask_model", "arguments": {"question": "?"}})
        )["result"]
        assert result["isError"] is True
        assert "did not declare the 'sampling' capability" in result["content"][0]["text"]


async def test_last_event_id_resumes_closed_stream(running: RunningServer) -> None:
    async with httpx.AsyncClient(timeout=20) as client:
        mcp = await connect(running, client)
        seen: list[dict[str, str]] = []
        async with client.stream(
            "POST", mcp.url, json=call(8, "hang_up"), headers=mcp.headers()
        ) as response:
            seen = [event async for event in events(response)]
        assert seen[0]["data"] == "" and int(seen[0]["retry"]) == FAST.retry_ms
        assert not any((message(e) or {}).get("id") == 8 for e in seen)
        last_id = seen[-1]["id"]
        headers = {**mcp.headers(), "Accept": "text/event-stream", "Last-Event-ID": last_id}
        async with asyncio.timeout(10), client.stream("GET", mcp.url, headers=headers) as resumed:
            assert resumed.status_code == 200
            replayed = [message(e) async for e in events(resumed)]
        assert replayed[-1] is not None
        assert replayed[-1]["result"]["content"][0]["text"] == "finished after reconnect"
        logs = [m["params"]["data"] for m in replayed if m and m.get("method")]
        assert logs == ["after close"]
        bad = await client.get(mcp.url, headers={**headers, "Last-Event-ID": "nope.1"})
        assert bad.status_code == 400


async def test_cancelled_request_stops_handler(running: RunningServer) -> None:
    async with httpx.AsyncClient(timeout=20) as client:
        mcp = await connect(running, client)
        cancel = {"requestId": 9, "reason": "user gave up"}
        received = await cancel_sleepy_once_it_logs(mcp, mcp, 9, cancel)
        assert not any(m and m.get("id") == 9 for m in received)


async def test_standalone_get_stream_starts_with_priming_event(running: RunningServer) -> None:
    async with httpx.AsyncClient(timeout=20) as client:
        mcp = await connect(running, client)
        headers = {**mcp.headers(), "Accept": "text/event-stream"}
        async with asyncio.timeout(5), client.stream("GET", mcp.url, headers=headers) as response:
            assert response.status_code == 200
            first = await anext(events(response))
        assert first["data"] == "" and "id" in first and "retry" in first


@contextlib.asynccontextmanager
async def session_on_two_instances(
    engine_a: Engine, engine_b: Engine, options: TransportOptions
) -> AsyncIterator[tuple[McpHttp, McpHttp]]:
    """A session opened on an instance serving ``engine_a``, joined on one serving ``engine_b``."""
    with (
        serve(streaming_tools(), engine_a, options) as a,
        serve(streaming_tools(), engine_b, options) as b,
    ):
        async with httpx.AsyncClient(timeout=20) as client:
            on_a = await connect(a, client)
            on_b = McpHttp(client, b.url, b.token())
            on_b.session = on_a.session
            yield on_a, on_b


async def test_two_app_instances_share_sessions_and_answers(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    engine_a = database(path)
    engine_b = sqlite_engine(str(path))
    with (
        serve(streaming_tools(), engine_a, FAST) as a,
        serve(streaming_tools(), engine_b, FAST) as b,
    ):
        async with httpx.AsyncClient(timeout=20) as client:
            on_a = McpHttp(client, a.url, a.token())
            await on_a.initialize(capabilities=SAMPLING)
            on_b = McpHttp(client, b.url, b.token())
            on_b.session = on_a.session
            assert (await on_b.call("ping"))["result"] == {}
            listed = (await on_b.call("tools/list"))["result"]["tools"]
            assert "ask_model" in {tool["name"] for tool in listed}
            answer = {
                "role": "assistant",
                "content": {"type": "text", "text": "from B"},
                "model": "m",
            }
            _, response = await call_answering(
                on_a, on_b, "ask_model", {"question": "who answers?"}, answer
            )
            assert response["result"]["content"][0]["text"] == "model said: from B"
            bob_on_b = McpHttp(client, b.url, b.token(subject="bob"))
            bob_on_b.session = on_a.session
            assert (
                await bob_on_b.post({"jsonrpc": "2.0", "id": 1, "method": "ping"})
            ).status_code == 404
    engine_b.dispose()
    engine_a.dispose()


async def test_cancel_sent_to_another_instance_stops_handler(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    engine_a = database(path)
    engine_b = sqlite_engine(str(path))
    async with session_on_two_instances(engine_a, engine_b, FAST) as (on_a, on_b):
        received = await cancel_sleepy_once_it_logs(on_a, on_b, 21, {"requestId": 21})
        assert not any(m and m.get("id") == 21 for m in received)
    engine_b.dispose()
    engine_a.dispose()


@contextlib.asynccontextmanager
async def two_instances_on_postgres(
    url: str, options: TransportOptions
) -> AsyncIterator[tuple[McpHttp, McpHttp]]:
    """A session opened on instance A and joined on instance B, sharing fresh tables at ``url``."""
    engine_a = create_engine(url)
    engine_b = create_engine(url)
    metadata.drop_all(engine_a)
    create_tables(engine_a)
    try:
        async with session_on_two_instances(engine_a, engine_b, options) as pair:
            yield pair
    finally:
        metadata.drop_all(engine_a)
        engine_a.dispose()
        engine_b.dispose()


@pytest.mark.postgres
async def test_two_app_instances_on_postgres(postgres_resource_url: str) -> None:
    async with two_instances_on_postgres(postgres_resource_url, FAST) as (on_a, on_b):
        answer = {"role": "assistant", "content": {"type": "text", "text": "pg"}}
        _, response = await call_answering(on_a, on_b, "ask_model", {"question": "?"}, answer)
        assert response["result"]["content"][0]["text"] == "model said: pg"


@pytest.mark.postgres
async def test_postgres_notify_wakes_the_waiting_worker(postgres_resource_url: str) -> None:
    slow_polling = TransportOptions(poll_interval=8.0, retry_ms=500)
    async with two_instances_on_postgres(postgres_resource_url, slow_polling) as (on_a, on_b):
        answer = {"role": "assistant", "content": {"type": "text", "text": "fast"}}
        started = time.monotonic()
        _, response = await call_answering(on_a, on_b, "ask_model", {"question": "?"}, answer)
        assert response["result"]["content"][0]["text"] == "model said: fast"
        assert time.monotonic() - started < 4.0  # polling alone would take >= 8 s
