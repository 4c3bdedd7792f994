"""MCP 2026-07-28 in-process: discovery, result shapes, multi round-trip requests, logging and
progress on the request's own stream, errors, and the hot path (no SQL)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event

from resourceserver.mcp import Context, Registry, load_tool_modules
from resourceserver.mcp.transport import TransportOptions
from resourceserver.storage import McpSession
from tests.support.mcp_harness import database, parse_sse
from tests.support.modern_mcp import (
    EVERYTHING,
    ModernApp,
    ModernHttp,
    envelope,
    modern_app,
    on_socket,
)

SERVER_INFO = "io.modelcontextprotocol/serverInfo"


def extra() -> Registry:
    registry = Registry(instructions="Use greet to greet.")

    @registry.tool()
    async def chatty(ctx: Context) -> str:
        """Logs at two levels and reports progress."""
        await ctx.log("info", "informative")
        await ctx.report_progress(1, 2, "half")
        await ctx.log("error", "bad news")
        await ctx.report_progress(2, 2)
        return "done"

    @registry.tool()
    async def fast(ctx: Context) -> str:
        """Answers at once."""
        return ctx.principal.subject

    @registry.tool()
    async def model_question(ctx: Context) -> str:
        """Samples, then lists roots."""
        reply = await ctx.sample("Say hi", key="hi")
        roots = await ctx.list_roots()
        return f"{reply.text} / {reply.model} / {[root.uri for root in roots]}"

    return registry


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    return database(tmp_path / "rs.db")


@pytest.fixture
def server(engine: Engine) -> ModernApp:
    registry = load_tool_modules(["tests.conformance.tools"], into=extra())
    return modern_app(registry, engine, TransportOptions(json_wait_seconds=5))


@pytest.fixture
async def mcp(server: ModernApp) -> AsyncIterator[ModernHttp]:
    async with server.client() as client:
        yield ModernHttp(client, server.token())


async def test_discover_describes_the_server(mcp: ModernHttp) -> None:
    result = await mcp.result("server/discover")
    assert result["supportedVersions"][0] == "2026-07-28"
    assert "2025-11-25" in result["supportedVersions"]
    capabilities = result["capabilities"]
    assert capabilities["extensions"] == {"io.modelcontextprotocol/tasks": {}}
    assert capabilities["tools"] == {"listChanged": True}
    assert capabilities["resources"] == {"subscribe": True, "listChanged": True}
    assert result["instructions"] == "Use greet to greet."
    assert result["_meta"][SERVER_INFO] == {"name": "charter", "version": "0.1.0"}
    assert result["resultType"] == "complete"


async def test_every_result_has_a_result_type_and_the_server_identity(mcp: ModernHttp) -> None:
    for method, params in (
        ("tools/list", {}),
        ("prompts/list", {}),
        ("resources/list", {}),
        ("resources/templates/list", {}),
        ("resources/read", {"uri": "test://static-text"}),
        ("prompts/get", {"name": "test_simple_prompt"}),
        ("tools/call", {"name": "greet", "arguments": {"name": "x"}}),
        (
            "completion/complete",
            {
                "ref": {"type": "ref/prompt", "name": "test_prompt_with_arguments"},
                "argument": {"name": "arg1", "value": "pa"},
            },
        ),
    ):
        result = await mcp.result(method, params)
        assert result["resultType"] == "complete", method
        assert result["_meta"][SERVER_INFO]["name"] == "charter", method


async def test_unknown_resource_is_invalid_params_with_the_uri(mcp: ModernHttp) -> None:
    response = await mcp.post("resources/read", {"uri": "test://nope"}, request_id=5)
    assert response.json() == {
        "jsonrpc": "2.0",
        "id": 5,
        "error": {"code": -32602, "message": "Resource not found", "data": {"uri": "test://nope"}},
    }


async def test_logs_only_when_the_request_names_a_level(mcp: ModernHttp) -> None:
    params = {"name": "chatty", "arguments": {}}
    quiet = await mcp.post("tools/call", params)
    assert quiet.headers["content-type"].startswith("application/json")
    assert quiet.json()["result"]["content"][0]["text"] == "done"
    loud = await mcp.post(
        "tools/call",
        {
            **params,
            "_meta": {
                **envelope(EVERYTHING),
                "io.modelcontextprotocol/logLevel": "warning",
                "progressToken": "p1",
            },
        },
    )
    assert loud.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(loud.text)
    assert all("id" not in event for event in events)  # not resumable in 2026-07-28
    messages = [json.loads(event["data"]) for event in events]
    logs = [m["params"]["data"] for m in messages if m.get("method") == "notifications/message"]
    progress = [m["params"] for m in messages if m.get("method") == "notifications/progress"]
    assert logs == ["bad news"]
    assert [p["progress"] for p in progress] == [1, 2]
    assert all(p["progressToken"] == "p1" for p in progress)
    assert messages[-1]["result"]["content"][0]["text"] == "done"


async def test_notifications_are_accepted_and_responses_refused(mcp: ModernHttp) -> None:
    headers = mcp.headers("notifications/cancelled", {})
    note = await mcp.client.post(
        mcp.url,
        json={"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1}},
        headers=headers,
    )
    assert note.status_code == 202
    answer = await mcp.client.post(
        mcp.url,
        json={"jsonrpc": "2.0", "id": 1, "result": {}, "params": {"_meta": envelope()}},
        headers=headers,
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == -32600


async def test_multi_round_trip_asks_again_for_what_is_missing_and_ignores_extras(
    mcp: ModernHttp,
) -> None:
    tool = {"name": "test_input_required_result_multi_round", "arguments": {}}
    first = await mcp.result("tools/call", tool)
    assert first["resultType"] == "input_required"
    assert "ttlMs" not in first and "cacheScope" not in first
    assert set(first["inputRequests"]) == {"step1"}
    assert first["inputRequests"]["step1"]["method"] == "elicitation/create"
    assert first["inputRequests"]["step1"]["params"]["mode"] == "form"
    # An answer under another key: step1 is asked again (no error).
    again = await mcp.result(
        "tools/call",
        {
            **tool,
            "inputResponses": {"nope": {"action": "accept"}},
            "requestState": first["requestState"],
        },
    )
    assert set(again["inputRequests"]) == {"step1"}
    second = await mcp.result(
        "tools/call",
        {
            **tool,
            "inputResponses": {"step1": {"action": "accept", "content": {"name": "Ada"}}},
            "requestState": again["requestState"],
        },
    )
    assert set(second["inputRequests"]) == {"step2"}
    done = await mcp.result(
        "tools/call",
        {
            **tool,
            "inputResponses": {
                "step2": {"action": "accept", "content": {"color": "teal"}},
                "extra": {"action": "accept", "content": {}},
            },
            "requestState": second["requestState"],
        },
    )
    assert done["resultType"] == "complete"
    assert done["content"][0]["text"] == "Ada likes teal"


async def test_invalid_answers_are_protocol_errors(mcp: ModernHttp) -> None:
    tool = {"name": "test_input_required_result_elicitation", "arguments": {}}
    for answers, text in (
        ({"user_name": 12345}, "must be an object"),
        ({"user_name": {"action": "maybe"}}, "'action' must be accept"),
        (None, "'inputResponses' must be an object"),
    ):
        response = await mcp.post("tools/call", {**tool, "inputResponses": answers})
        error = response.json()["error"]
        assert error["code"] == -32602 and text in error["message"], error


async def test_sampling_and_roots_travel_as_input_requests(mcp: ModernHttp) -> None:
    tool = {"name": "model_question", "arguments": {}}
    first = await mcp.result("tools/call", tool)
    assert first["inputRequests"]["hi"]["method"] == "sampling/createMessage"
    reply = {"role": "assistant", "content": {"type": "text", "text": "hi!"}, "model": "m1"}
    second = await mcp.result(
        "tools/call",
        {**tool, "inputResponses": {"hi": reply}, "requestState": first["requestState"]},
    )
    assert second["inputRequests"]["roots-1"] == {"method": "roots/list", "params": {}}
    done = await mcp.result(
        "tools/call",
        {
            **tool,
            "inputResponses": {"roots-1": {"roots": [{"uri": "file:///w"}]}},
            "requestState": second["requestState"],
        },
    )
    assert done["content"][0]["text"] == "hi! / m1 / ['file:///w']"


async def test_prompts_may_ask_too(mcp: ModernHttp) -> None:
    prompt = {"name": "test_input_required_result_prompt"}
    first = await mcp.result("prompts/get", prompt)
    assert set(first["inputRequests"]) == {"user_context"}
    done = await mcp.result(
        "prompts/get",
        {
            **prompt,
            "inputResponses": {"user_context": {"action": "accept", "content": {"context": "C"}}},
            "requestState": first["requestState"],
        },
    )
    assert done["messages"][0]["content"]["text"] == "Use this context: C"


async def test_a_client_without_elicitation_is_never_asked(mcp: ModernHttp) -> None:
    sampling_only = ModernHttp(mcp.client, mcp.token, capabilities={"sampling": {}})
    result = await sampling_only.result(
        "tools/call", {"name": "test_input_required_result_capabilities", "arguments": {}}
    )
    assert [q["method"] for q in result["inputRequests"].values()] == ["sampling/createMessage"]


@contextmanager
def counted(engine: Engine) -> Iterator[list[str]]:
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def test_hot_path_tools_call_runs_no_sql_and_makes_no_session(
    mcp: ModernHttp, engine: Engine
) -> None:
    await mcp.result("tools/call", {"name": "fast", "arguments": {}})  # warm the token cache
    with counted(engine) as statements:
        results = await asyncio.gather(
            *(mcp.result("tools/call", {"name": "fast", "arguments": {}}) for _ in range(25))
        )
        await mcp.result("tools/list")
    assert {result["content"][0]["text"] for result in results} == {"alice"}
    assert statements == []
    with engine.connect() as connection:
        assert connection.execute(McpSession.__table__.select()).first() is None


async def test_get_and_delete_at_2026_07_28_are_405(mcp: ModernHttp) -> None:
    for method in ("GET", "DELETE"):
        response = await mcp.client.request(
            method,
            mcp.url,
            headers={
                "Authorization": f"Bearer {mcp.token}",
                "Accept": "text/event-stream",
                "MCP-Protocol-Version": "2026-07-28",
            },
        )
        assert response.status_code == 405, method
        assert response.headers["allow"] == "POST"


STOPPED: list[str] = []


def slow_tools() -> Registry:
    registry = Registry()

    @registry.tool()
    async def slow(ctx: Context, seconds: float) -> str:
        """Sleeps, reporting progress first."""
        await ctx.report_progress(0, 1)
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            STOPPED.append("slow")
            raise
        return "slept"

    return registry


async def test_a_silent_slow_call_is_answered_over_sse(tmp_path: Path) -> None:
    app = modern_app(
        slow_tools(), database(tmp_path / "rs.db"), TransportOptions(json_wait_seconds=0.1)
    )
    async with app.client() as client:
        response = await ModernHttp(client, app.token()).post(
            "tools/call", {"name": "slow", "arguments": {"seconds": 0.4}}
        )
    assert response.headers["content-type"].startswith("text/event-stream")
    final = json.loads(parse_sse(response.text)[-1]["data"])
    assert final["result"]["content"][0]["text"] == "slept"


async def test_closing_the_stream_cancels_the_request(tmp_path: Path) -> None:
    app = modern_app(slow_tools(), database(tmp_path / "rs.db"))
    with on_socket(app) as live:
        async with live.client() as client:
            mcp = ModernHttp(client, live.token())
            params = {
                "name": "slow",
                "arguments": {"seconds": 30},
                "_meta": {**envelope(), "progressToken": "p"},
            }
            body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}
            headers = mcp.headers("tools/call", params)
            async with client.stream("POST", mcp.url, json=body, headers=headers) as response:
                async for line in response.aiter_lines():
                    if "notifications/progress" in line:
                        break  # leave: the connection closes
        async with asyncio.timeout(5):
            while "slow" not in STOPPED:
                await asyncio.sleep(0.05)
