"""MCP over Streamable HTTP, in-process: lifecycle, sessions, listing, errors, step-up, SSE."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from resourceserver.mcp import Context, Registry
from resourceserver.mcp.transport import TransportOptions
from resourceserver.tools import builtin_registry
from tests.support.mcp_harness import LOCAL_URL, LocalApp, McpHttp, database, local_app, parse_sse


def extra_tools() -> Registry:
    registry = Registry()

    @registry.tool()
    async def slow_count(ctx: Context, steps: int = 3) -> str:
        """Counts with progress and logs."""
        for step in range(steps + 1):
            await ctx.report_progress(step, steps, f"step {step}")
            await ctx.log("info", f"at {step}")
            await ctx.log("error", f"error {step}")
            await asyncio.sleep(0.01)
        return "counted"

    @registry.tool(scopes={"admin"})
    def secret() -> str:
        """Only for admins."""
        return "s3cret"

    for index in range(4):

        @registry.tool(name=f"filler_{index}", description=f"Filler tool {index}.")
        def filler() -> str:
            return "x"

    return registry


@pytest.fixture
def server(tmp_path: Path) -> LocalApp:
    engine = database(tmp_path / "rs.db")
    registry = builtin_registry(engine)
    registry.merge(extra_tools())
    return local_app(registry, engine, TransportOptions(page_size=3))


@pytest.fixture
async def alice(server: LocalApp) -> AsyncIterator[McpHttp]:
    async with server.client() as client:
        mcp = McpHttp(client, LOCAL_URL, server.token())
        await mcp.initialize()
        yield mcp


async def test_initialize_echoes_supported_version_else_latest(server: LocalApp) -> None:
    async with server.client() as client:
        old = McpHttp(client, LOCAL_URL, server.token())
        assert (await old.initialize("2025-03-26"))["protocolVersion"] == "2025-03-26"
        future = McpHttp(client, LOCAL_URL, server.token())
        result = await future.initialize("2099-01-01")
        assert result["protocolVersion"] == "2025-11-25"
        assert set(result["capabilities"]) >= {"tools", "prompts", "resources", "logging"}
        assert old.session != future.session
        assert old.session is not None and len(old.session) >= 43  # >= 256 bits of base64url


async def test_protocol_version_header_checked_after_initialize(alice: McpHttp) -> None:
    ping = {"jsonrpc": "2.0", "id": 9, "method": "ping"}
    bad = await alice.post(ping, **{"MCP-Protocol-Version": "1999-01-01"})
    assert bad.status_code == 400
    assert "MCP-Protocol-Version" in bad.json()["error"]["message"]
    headers = alice.headers()
    del headers["MCP-Protocol-Version"]  # absent: 2025-03-26 is assumed, which is supported
    ok = await alice.client.post(alice.url, json=ping, headers=headers)
    assert ok.status_code == 200
    assert ok.json() == {"jsonrpc": "2.0", "id": 9, "result": {}}


async def test_missing_session_is_400_and_unknown_is_404(alice: McpHttp) -> None:
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    headers = alice.headers()
    del headers["Mcp-Session-Id"]
    missing = await alice.client.post(alice.url, json=ping, headers=headers)
    assert missing.status_code == 400
    unknown = await alice.post(ping, **{"Mcp-Session-Id": "x" * 43})
    assert unknown.status_code == 404


async def test_s44_session_bound_to_principal(server: LocalApp, alice: McpHttp) -> None:
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    assert (await alice.post(ping)).status_code == 200
    for subject, client_id in (("bob", "c1"), ("alice", "other-client")):
        intruder = McpHttp(
            alice.client, LOCAL_URL, server.token(subject=subject, client_id=client_id)
        )
        intruder.session = alice.session
        assert (await intruder.post(ping)).status_code == 404
        get = await alice.client.get(
            LOCAL_URL, headers={**intruder.headers(), "Accept": "text/event-stream"}
        )
        assert get.status_code == 404
        delete = await alice.client.delete(LOCAL_URL, headers=intruder.headers())
        assert delete.status_code == 404
    assert (await alice.post(ping)).status_code == 200


async def test_tools_list_filters_by_scope_and_paginates(server: LocalApp) -> None:
    async def names(scope: str) -> list[str]:
        async with server.client() as client:
            mcp = McpHttp(client, LOCAL_URL, server.token(scope=scope))
            await mcp.initialize()
            collected: list[str] = []
            cursor = None
            pages = 0
            while True:
                params: dict[str, Any] = {"cursor": cursor} if cursor else {}
                result = (await mcp.call("tools/list", params))["result"]
                assert len(result["tools"]) <= 3
                collected += [tool["name"] for tool in result["tools"]]
                pages += 1
                cursor = result.get("nextCursor")
                if not cursor:
                    break
            assert pages == -(-len(collected) // 3)
            return collected

    base = await names("mcp")
    assert len(base) == len(set(base))
    assert "whoami" in base and "slow_count" in base
    assert not {"notes_list", "notes_add", "secret"} & set(base)
    reader = await names("mcp notes:read")
    assert {"notes_list", "notes_read"} <= set(reader) and "notes_add" not in reader
    everything = await names("mcp notes:read notes:write admin")
    assert {"notes_add", "notes_delete", "secret"} <= set(everything)


async def test_bad_cursor_is_invalid_params(alice: McpHttp) -> None:
    response = await alice.call("tools/list", {"cursor": "not-a-cursor"})
    assert response["error"]["code"] == -32602


async def test_step_up_403_names_the_tool_scopes(server: LocalApp) -> None:
    async with server.client() as client:
        mcp = McpHttp(client, LOCAL_URL, server.token(scope="mcp"))
        await mcp.initialize()
        response, _ = await mcp.request("tools/call", {"name": "notes_add", "arguments": {}})
        assert response.status_code == 403
        challenge = response.headers["www-authenticate"]
        assert 'error="insufficient_scope"' in challenge
        assert 'scope="mcp notes:write"' in challenge


async def test_missing_base_scope_is_403_even_for_initialize(server: LocalApp) -> None:
    async with server.client() as client:
        mcp = McpHttp(client, LOCAL_URL, server.token(scope="notes:read"))
        message = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}
        response = await mcp.post(message)
        assert response.status_code == 403
        assert 'scope="mcp"' in response.headers["www-authenticate"]


async def test_jsonrpc_error_codes(alice: McpHttp) -> None:
    unknown_tool = await alice.call("tools/call", {"name": "nope", "arguments": {}})
    assert unknown_tool["error"]["code"] == -32602
    assert "Unknown tool: nope" in unknown_tool["error"]["message"]
    assert (await alice.call("no/such/method"))["error"]["code"] == -32601
    assert (await alice.call("resources/read", {"uri": "x://none"}))["error"]["code"] == -32002
    assert (await alice.call("logging/setLevel", {"level": "loud"}))["error"]["code"] == -32602
    parse = await alice.client.post(alice.url, content=b"{oops", headers=alice.headers())
    assert parse.status_code == 400 and parse.json()["error"]["code"] == -32700
    invalid = await alice.post({"jsonrpc": "1.0", "id": 1, "method": "ping"})
    assert invalid.status_code == 400 and invalid.json()["error"]["code"] == -32600


async def test_accept_and_content_type_checks(alice: McpHttp) -> None:
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    assert (await alice.post(ping, Accept="text/html")).status_code == 406
    assert (await alice.post(ping, **{"Content-Type": "text/plain"})).status_code == 415
    get = await alice.client.get(
        LOCAL_URL, headers={**alice.headers(), "Accept": "application/json"}
    )
    assert get.status_code == 406


async def test_notifications_and_unknown_responses_are_accepted(alice: McpHttp) -> None:
    assert (await alice.notify("notifications/roots/list_changed")).status_code == 202
    answer = {"jsonrpc": "2.0", "id": "srv-unknown", "result": {}}
    assert (await alice.post(answer)).status_code == 202


async def test_input_validation_error_text(alice: McpHttp) -> None:
    response = await alice.call("tools/call", {"name": "slow_count", "arguments": {"steps": "abc"}})
    result = response["result"]
    assert result["isError"] is True
    assert "argument 'steps': Input should be a valid integer" in result["content"][0]["text"]
    assert "got 'abc'" in result["content"][0]["text"]


async def test_progress_and_logging_arrive_on_sse(alice: McpHttp) -> None:
    assert (await alice.call("logging/setLevel", {"level": "warning"}))["result"] == {}
    message = {
        "jsonrpc": "2.0",
        "id": 77,
        "method": "tools/call",
        "params": {
            "name": "slow_count",
            "arguments": {"steps": 2},
            "_meta": {"progressToken": "p"},
        },
    }
    response = await alice.post(message)
    assert response.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(response.text)
    assert events[0]["data"] == "" and "id" in events[0] and events[0]["retry"].isdigit()
    assert all("id" in event for event in events)

    messages = [json.loads(event["data"]) for event in events[1:]]
    progress = [
        m["params"]["progress"] for m in messages if m.get("method") == "notifications/progress"
    ]
    assert progress == [0, 1, 2]
    logs = [m["params"] for m in messages if m.get("method") == "notifications/message"]
    assert [log["level"] for log in logs] == ["error"] * 3
    assert messages[-1]["id"] == 77
    assert messages[-1]["result"]["content"][0]["text"] == "counted"


async def test_plain_request_gets_json(alice: McpHttp) -> None:
    response, _ = await alice.request("ping")
    assert response.headers["content-type"] == "application/json"
    assert response.headers["mcp-session-id"] == alice.session


async def test_delete_ends_session(alice: McpHttp) -> None:
    response = await alice.client.delete(LOCAL_URL, headers=alice.headers())
    assert response.status_code == 204
    again, _ = await alice.request("ping")
    assert again.status_code == 404


async def test_whoami_and_notes(server: LocalApp, alice: McpHttp) -> None:
    me = (await alice.call("tools/call", {"name": "whoami", "arguments": {}}))["result"]
    assert me["structuredContent"]["subject"] == "alice"
    assert me["structuredContent"]["scopes"] == ["mcp", "notes:read", "notes:write"]

    async def tool(mcp: McpHttp, name: str, **arguments: Any) -> dict[str, Any]:
        result: dict[str, Any] = (
            await mcp.call("tools/call", {"name": name, "arguments": arguments})
        )["result"]
        return result

    added = await tool(alice, "notes_add", title="Groceries", body="milk")
    note_id = added["structuredContent"]["id"]
    listed = await tool(alice, "notes_list")
    assert listed["structuredContent"]["total"] == 1
    assert (await tool(alice, "notes_read", note_id=note_id))["structuredContent"]["body"] == "milk"
    too_long = await tool(alice, "notes_add", title="x" * 201)
    assert too_long["isError"] is True
    assert (
        "argument 'title': String should have at most 200 characters"
        in (too_long["content"][0]["text"])
    )
    async with server.client() as client:
        bob = McpHttp(client, LOCAL_URL, server.token(subject="bob"))
        await bob.initialize()
        stolen = await tool(bob, "notes_read", note_id=note_id)
        assert stolen["isError"] is True
        assert f"no note with id {note_id}" in stolen["content"][0]["text"]
        assert (await tool(bob, "notes_list"))["structuredContent"]["total"] == 0
    assert (await tool(alice, "notes_delete", note_id=note_id))["structuredContent"] == {
        "deleted": note_id
    }
    assert (await tool(alice, "notes_read", note_id=note_id))["isError"] is True


async def test_batch_only_in_2025_03_26(server: LocalApp, alice: McpHttp) -> None:
    batch = [
        {"jsonrpc": "2.0", "id": 1, "method": "ping"},
        {"jsonrpc": "2.0", "method": "notifications/roots/list_changed"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "nope"}},
    ]
    refused = await alice.client.post(alice.url, json=batch, headers=alice.headers())
    assert refused.status_code == 400
    async with server.client() as client:
        old = McpHttp(client, LOCAL_URL, server.token())
        await old.initialize("2025-03-26")
        response = await client.post(LOCAL_URL, json=batch, headers=old.headers())
        assert response.status_code == 200
        replies = response.json()
        assert replies[0] == {"jsonrpc": "2.0", "id": 1, "result": {}}
        assert replies[1]["id"] == 2 and replies[1]["error"]["code"] == -32602
        only_notes = [batch[1]]
        accepted = await client.post(LOCAL_URL, json=only_notes, headers=old.headers())
        assert accepted.status_code == 202


async def test_resource_updated_goes_to_subscribers_only(server: LocalApp) -> None:
    endpoint = server.app.state.mcp_endpoint
    async with server.client() as client:
        watcher = McpHttp(client, LOCAL_URL, server.token())
        await watcher.initialize()
        other = McpHttp(client, LOCAL_URL, server.token())
        await other.initialize()
        assert (await watcher.call("resources/subscribe", {"uri": "notes://a"}))["result"] == {}
        await other.call("resources/subscribe", {"uri": "notes://a"})
        await other.call("resources/unsubscribe", {"uri": "notes://a"})
        assert await endpoint.notify_resource_updated("notes://a") == 1
        assert watcher.session is not None and other.session is not None
        logged = await endpoint.log.after(watcher.session, "standalone", 0)
        assert [json.loads(e.payload) for e in logged] == [
            {
                "jsonrpc": "2.0",
                "method": "notifications/resources/updated",
                "params": {"uri": "notes://a"},
            }
        ]
        assert await endpoint.log.after(other.session, "standalone", 0) == []


async def test_expired_session_is_404(tmp_path: Path) -> None:
    engine = database(tmp_path / "short.db")
    server = local_app(builtin_registry(engine), engine, TransportOptions(session_ttl_seconds=1.5))
    async with server.client() as client:
        mcp = McpHttp(client, LOCAL_URL, server.token())
        await mcp.initialize()
        assert (await mcp.request("ping"))[0].status_code == 200
        await asyncio.sleep(2.0)
        assert (await mcp.request("ping"))[0].status_code == 404


async def test_app_wiring_metadata_auth_and_origin(server: LocalApp) -> None:
    async with server.client() as client:
        prm = await client.get("/.well-known/oauth-protected-resource/mcp")
        assert prm.status_code == 200 and prm.json()["resource"] == LOCAL_URL
        anonymous = await client.post(LOCAL_URL, json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
        assert anonymous.status_code == 401
        assert "resource_metadata=" in anonymous.headers["www-authenticate"]
        mcp = McpHttp(client, LOCAL_URL, server.token())
        rebinding = await mcp.post(
            {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}},
            Host="evil.example.com",
            Origin="http://evil.example.com",
        )
        assert rebinding.status_code == 403


async def test_slow_silent_tool_is_upgraded_to_sse_with_keepalives(tmp_path: Path) -> None:
    registry = Registry()

    @registry.tool
    async def ponder() -> str:
        """Thinks quietly for a while."""
        await asyncio.sleep(0.5)
        return "done"

    engine = database(tmp_path / "slow.db")
    options = TransportOptions(json_wait_seconds=0.1, keepalive_seconds=0.1)
    server = local_app(registry, engine, options)
    async with server.client() as client:
        mcp = McpHttp(client, LOCAL_URL, server.token())
        await mcp.initialize()
        response, messages = await mcp.request("tools/call", {"name": "ponder", "arguments": {}})
        assert response.headers["content-type"].startswith("text/event-stream")
        assert ": keepalive" in response.text
        events = parse_sse(response.text)
        assert events[0]["data"] == "" and "retry" in events[0]
        assert messages[-1]["result"]["content"][0]["text"] == "done"
        quick, _ = await mcp.request("ping")
        assert quick.headers["content-type"] == "application/json"
