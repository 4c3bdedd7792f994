"""The 2024-11-05 HTTP+SSE transport on a real socket (uvicorn): the endpoint event, messages
answered on the stream, and S85 (the message endpoint is bound to the stream's principal)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from resourceserver.app import create_app
from resourceserver.jwks import StaticKeySource
from resourceserver.mcp import Context, Registry, legacy_sse
from resourceserver.mcp.bus import Bus
from resourceserver.mcp.events import EventLog
from resourceserver.mcp.handshake import STANDALONE_STREAM
from resourceserver.mcp.legacy_sse import LegacyChannel, legacy_paths
from resourceserver.mcp.pending import PendingRequests
from resourceserver.mcp.sessions import SessionStore
from resourceserver.mcp.transport import TransportOptions
from resourceserver.principal import Principal
from resourceserver.settings import ResourceServerSettings
from resourceserver.storage import Database, McpLegacyStream, McpSession
from resourceserver.verifier import JwtTokenVerifier
from tests.support.mcp_harness import ISSUER, LOCAL_URL, RunningServer, database, serve
from tests.support.tokens import jwks_of, make_signing_key, mint_access_token

INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2024-11-05",
        "capabilities": {},
        "clientInfo": {"name": "legacy-test", "version": "1"},
    },
}


def echo_registry() -> Registry:
    registry = Registry()

    @registry.tool(scopes={"mcp"})
    async def echo(text: str) -> str:
        "Say it back."
        return text

    @registry.tool(public=True)
    async def hello() -> str:
        "Anyone may call this."
        return "hello"

    return registry


def private_registry() -> Registry:
    registry = Registry()

    @registry.tool(scopes={"mcp"})
    async def echo(text: str) -> str:
        "Say it back."
        return text

    return registry


@dataclass
class Stream:
    """One open ``GET /sse``: the message endpoint's URL and the events that follow."""

    response: httpx.Response
    base: str
    endpoint: str
    lines: AsyncIterator[str]

    async def event(self, timeout: float = 10.0) -> dict[str, str]:
        async def read() -> dict[str, str]:
            event: dict[str, str] = {}
            async for line in self.lines:
                if line == "":
                    if event:
                        return event
                    continue
                if line.startswith(":"):
                    continue
                name, _, value = line.partition(":")
                event[name] = value.removeprefix(" ")
            raise EOFError("the stream ended")

        return await asyncio.wait_for(read(), timeout)

    async def message(self) -> dict[str, Any]:
        event = await self.event()
        assert event.get("event") == "message", event
        message: dict[str, Any] = json.loads(event["data"])
        return message

    @property
    def url(self) -> str:
        return self.base + self.endpoint


def base_of(server: RunningServer) -> str:
    return server.url.removesuffix("/mcp")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@asynccontextmanager
async def open_stream(
    client: httpx.AsyncClient, server: RunningServer, headers: dict[str, str]
) -> AsyncIterator[Stream]:
    base = base_of(server)
    async with client.stream(
        "GET", base + "/sse", headers={"Accept": "text/event-stream", **headers}
    ) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = Stream(response, base, "", response.aiter_lines())
        first = await stream.event()
        assert first["event"] == "endpoint"
        stream.endpoint = first["data"]
        yield stream


async def initialized(stream: Stream, client: httpx.AsyncClient, token: str) -> None:
    posted = await client.post(stream.url, json=INIT, headers=bearer(token))
    assert posted.status_code == 202
    reply = await stream.message()
    assert reply["id"] == 1
    assert reply["result"]["protocolVersion"] == "2024-11-05"
    done = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    assert (await client.post(stream.url, json=done, headers=bearer(token))).status_code == 202


def call(request_id: int, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {"name": name, "arguments": arguments},
    }


def test_legacy_paths_sit_beside_the_mcp_path() -> None:
    assert legacy_paths("/mcp") == ("/sse", "/messages")
    assert legacy_paths("/echo/mcp") == ("/echo/sse", "/echo/messages")
    assert legacy_paths("/tools") == ("/tools/sse", "/tools/messages")
    assert legacy_paths("/") == ("/sse", "/messages")


async def test_stream_serves_initialize_and_tool_calls(tmp_path: Path) -> None:
    with serve(echo_registry(), database(tmp_path / "rs.db")) as server:
        token = server.token()
        async with (
            httpx.AsyncClient(timeout=10) as client,
            open_stream(client, server, bearer(token)) as stream,
        ):
            path, _, query = stream.endpoint.partition("?")
            assert path == "/messages"
            session_id = httpx.QueryParams(query)["session_id"]
            assert len(session_id) >= 43
            await initialized(stream, client, token)
            posted = await client.post(
                stream.url, json=call(2, "echo", {"text": "hi"}), headers=bearer(token)
            )
            assert posted.status_code == 202
            reply = await stream.message()
            assert reply["id"] == 2
            assert reply["result"]["content"][0]["text"] == "hi"
        # The stream ended: so did its session (and nothing is left in the tables).
        await asyncio.sleep(0.3)
        counts = server.engine.connect().execute(select(func.count()).select_from(McpLegacyStream))
        assert counts.scalar() == 0
        with server.engine.connect() as connection:
            assert connection.scalar(select(func.count()).select_from(McpSession)) == 0


async def test_keepalive_comments_while_idle(tmp_path: Path) -> None:
    options = TransportOptions(keepalive_seconds=0.2)
    with serve(private_registry(), database(tmp_path / "rs.db"), options) as server:
        async with (
            httpx.AsyncClient(timeout=10) as client,
            open_stream(client, server, bearer(server.token())) as stream,
        ):
            line = await asyncio.wait_for(anext(stream.lines), 5)
            while line == "":
                line = await asyncio.wait_for(anext(stream.lines), 5)
            assert line.startswith(":")


async def test_s85_another_principals_token_gets_404(tmp_path: Path) -> None:
    with serve(private_registry(), database(tmp_path / "rs.db")) as server:
        token = server.token()
        other_audience = mint_access_token(
            server.key,
            issuer=ISSUER,
            audience=[server.settings.resource_url, "https://elsewhere.example/mcp"],
            subject="alice",
            client_id="c1",
            scope="mcp",
            lifetime=3600,
        )
        strangers = {
            "another subject": server.token(subject="mallory"),
            "another client": server.token(client_id="c2"),
            "another audience": other_audience,
        }
        async with (
            httpx.AsyncClient(timeout=10) as client,
            open_stream(client, server, bearer(token)) as stream,
        ):
            await initialized(stream, client, token)
            for why, stranger in strangers.items():
                posted = await client.post(
                    stream.url, json=call(5, "echo", {"text": "x"}), headers=bearer(stranger)
                )
                assert posted.status_code == 404, why
                assert posted.json()["error"]["message"] == "Session not found"
            # The owner still gets through, and nothing of the strangers' reached the stream.
            posted = await client.post(
                stream.url, json=call(6, "echo", {"text": "mine"}), headers=bearer(token)
            )
            assert posted.status_code == 202
            reply = await stream.message()
            assert reply["id"] == 6


async def test_s85_no_token_gets_401_challenge(tmp_path: Path) -> None:
    with serve(private_registry(), database(tmp_path / "rs.db")) as server:
        base = base_of(server)
        async with httpx.AsyncClient(timeout=10) as client:
            for method, path in (("GET", "/sse"), ("POST", "/messages?session_id=x")):
                refused = await client.request(method, base + path, json={})
                assert refused.status_code == 401, path
                challenge = refused.headers["www-authenticate"]
                assert challenge.startswith("Bearer ")
                assert f'resource_metadata="{server.settings.resource_metadata_url}"' in challenge
            token = server.token()
            async with open_stream(client, server, bearer(token)) as stream:
                refused = await client.post(stream.url, json=call(1, "echo", {"text": "x"}))
                assert refused.status_code == 401
                assert "resource_metadata=" in refused.headers["www-authenticate"]
                # A token without the scope the tool needs: 403 insufficient_scope, as on /mcp.
                weak = server.token(scope="notes:read")
                weak_stream = await client.get(base + "/sse", headers=bearer(weak))
                assert weak_stream.status_code == 403
                assert 'error="insufficient_scope"' in weak_stream.headers["www-authenticate"]


async def test_s85_bad_origin_gets_403_on_stream_and_messages(tmp_path: Path) -> None:
    with serve(private_registry(), database(tmp_path / "rs.db")) as server:
        token = server.token()
        evil = {"Origin": "https://evil.example"}
        async with (
            httpx.AsyncClient(timeout=10) as client,
            open_stream(client, server, bearer(token)) as stream,
        ):
            refused = await client.get(
                stream.base + "/sse",
                headers={**bearer(token), **evil, "Accept": "text/event-stream"},
            )
            assert refused.status_code == 403
            await initialized(stream, client, token)
            posted = await client.post(
                stream.url, json=call(2, "echo", {"text": "x"}), headers={**bearer(token), **evil}
            )
            assert posted.status_code == 403
            # A loopback origin (a local browser client) is fine, as on /mcp.
            local = {"Origin": "http://localhost:3000"}
            posted = await client.post(
                stream.url, json=call(3, "echo", {"text": "ok"}), headers={**bearer(token), **local}
            )
            assert posted.status_code == 202
            assert (await stream.message())["id"] == 3


async def test_s85_unknown_or_closed_session_gets_404(tmp_path: Path) -> None:
    with serve(private_registry(), database(tmp_path / "rs.db")) as server:
        token = server.token()
        base = base_of(server)
        async with httpx.AsyncClient(timeout=10) as client:
            for query in ("", "?session_id=", "?session_id=unknown", "?session_id=" + "a" * 5000):
                posted = await client.post(
                    base + "/messages" + query,
                    json=call(1, "echo", {"text": "x"}),
                    headers=bearer(token),
                )
                assert posted.status_code == 404, query[:40]
            async with open_stream(client, server, bearer(token)) as stream:
                await initialized(stream, client, token)
                url = stream.url
            await asyncio.sleep(0.3)
            posted = await client.post(
                url, json=call(2, "echo", {"text": "x"}), headers=bearer(token)
            )
            assert posted.status_code == 404


async def test_s85_oversize_body_gets_413(tmp_path: Path) -> None:
    options = TransportOptions(max_body_bytes=1000)
    with serve(private_registry(), database(tmp_path / "rs.db"), options) as server:
        token = server.token()
        async with (
            httpx.AsyncClient(timeout=10) as client,
            open_stream(client, server, bearer(token)) as stream,
        ):
            await initialized(stream, client, token)
            big = call(2, "echo", {"text": "x" * 2000})
            posted = await client.post(stream.url, json=big, headers=bearer(token))
            assert posted.status_code == 413
            posted = await client.post(
                stream.url, json=call(3, "echo", {"text": "small"}), headers=bearer(token)
            )
            assert posted.status_code == 202
            assert (await stream.message())["id"] == 3


async def test_s85_open_streams_per_principal_are_capped(tmp_path: Path) -> None:
    options = TransportOptions(legacy_streams_per_principal=2)
    with serve(private_registry(), database(tmp_path / "rs.db"), options) as server:
        token = server.token()
        async with httpx.AsyncClient(timeout=10) as client:
            async with open_stream(client, server, bearer(token)) as first:
                async with open_stream(client, server, bearer(token)) as second:
                    async with open_stream(client, server, bearer(token)) as third:
                        # The least recently used stream ended; the others serve on.
                        with pytest.raises(EOFError):
                            await first.event(timeout=5)
                        posted = await client.post(first.url, json=INIT, headers=bearer(token))
                        assert posted.status_code == 404
                        await initialized(second, client, token)
                        await initialized(third, client, token)
            with server.engine.connect() as connection:
                await asyncio.sleep(0.3)
                left = connection.scalar(select(func.count()).select_from(McpLegacyStream))
                assert left == 0


async def test_s85_anonymous_stream_public_tools_then_step_up(tmp_path: Path) -> None:
    with serve(echo_registry(), database(tmp_path / "rs.db")) as server:
        async with (
            httpx.AsyncClient(timeout=10) as client,
            open_stream(client, server, {}) as stream,
        ):
            init = await client.post(stream.url, json=INIT)
            assert init.status_code == 202
            assert (await stream.message())["id"] == 1
            assert (await client.post(stream.url, json=call(2, "hello", {}))).status_code == 202
            assert (await stream.message())["result"]["content"][0]["text"] == "hello"
            # Not public: sign in (401 with the challenge), then the signed-in principal adopts
            # the stream; anonymous callers are strangers to it from then on.
            refused = await client.post(stream.url, json=call(3, "echo", {"text": "x"}))
            assert refused.status_code == 401
            assert "resource_metadata=" in refused.headers["www-authenticate"]
            token = server.token()
            posted = await client.post(
                stream.url, json=call(3, "echo", {"text": "signed in"}), headers=bearer(token)
            )
            assert posted.status_code == 202
            assert (await stream.message())["result"]["content"][0]["text"] == "signed in"
            again = await client.post(stream.url, json=call(4, "hello", {}))
            assert again.status_code == 404
            stranger = server.token(subject="mallory")
            posted = await client.post(
                stream.url, json=call(5, "hello", {}), headers=bearer(stranger)
            )
            assert posted.status_code == 404


async def test_legacy_sse_off_serves_neither_path(tmp_path: Path) -> None:
    key = make_signing_key()
    engine = database(tmp_path / "rs.db")
    for enabled in (True, False):
        settings = ResourceServerSettings(resource_url=LOCAL_URL, issuer=ISSUER, legacy_sse=enabled)
        verifier = JwtTokenVerifier(settings, StaticKeySource(jwks_of(key)))
        app = create_app(settings, verifier, private_registry(), engine)
        assert ("/sse" in app.direct) is enabled
        assert ("/messages" in app.direct) is enabled
        if enabled:
            continue
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as c:
            assert (await c.get("/sse")).status_code == 404
            assert (await c.post("/messages?session_id=x", json=INIT)).status_code == 404


def asking_registry(cancelled: list[str]) -> Registry:
    registry = Registry()

    @registry.tool(scopes={"mcp"})
    async def ask(ctx: Context) -> str:
        "Ask the client's model."
        await ctx.report_progress(0, 1, "asking")
        answer = await ctx.sample("Say hi")
        return f"the model said {answer.text}"

    @registry.tool(scopes={"mcp"})
    async def wait_forever() -> str:
        "Never ends unless cancelled."
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.append("wait_forever")
        return "unreachable"

    return registry


async def test_sampling_progress_and_cancellation_travel_on_the_stream(tmp_path: Path) -> None:
    cancelled: list[str] = []
    with serve(asking_registry(cancelled), database(tmp_path / "rs.db")) as server:
        token = server.token()
        async with (
            httpx.AsyncClient(timeout=10) as client,
            open_stream(client, server, bearer(token)) as stream,
        ):
            init = {**INIT, "params": {**INIT["params"], "capabilities": {"sampling": {}}}}
            assert (
                await client.post(stream.url, json=init, headers=bearer(token))
            ).status_code == 202
            assert (await stream.message())["id"] == 1
            ask = call(2, "ask", {})
            ask["params"]["_meta"] = {"progressToken": "p1"}
            assert (
                await client.post(stream.url, json=ask, headers=bearer(token))
            ).status_code == 202
            progress = await stream.message()
            assert progress["method"] == "notifications/progress"
            assert progress["params"]["progressToken"] == "p1"
            question = await stream.message()
            assert question["method"] == "sampling/createMessage"
            answer = {
                "jsonrpc": "2.0",
                "id": question["id"],
                "result": {
                    "role": "assistant",
                    "content": {"type": "text", "text": "hi"},
                    "model": "m",
                },
            }
            assert (
                await client.post(stream.url, json=answer, headers=bearer(token))
            ).status_code == 202
            result = await stream.message()
            assert result["id"] == 2
            assert result["result"]["content"][0]["text"] == "the model said hi"

            # A cancelled request ends without a response; the stream goes on.
            posted = await client.post(
                stream.url, json=call(3, "wait_forever", {}), headers=bearer(token)
            )
            assert posted.status_code == 202
            cancel = {
                "jsonrpc": "2.0",
                "method": "notifications/cancelled",
                "params": {"requestId": 3, "reason": "changed my mind"},
            }
            posted = await client.post(stream.url, json=cancel, headers=bearer(token))
            assert posted.status_code == 202
            for _ in range(100):
                if cancelled:
                    break
                await asyncio.sleep(0.05)
            assert cancelled == ["wait_forever"]
            ping = {"jsonrpc": "2.0", "id": 4, "method": "ping"}
            assert (
                await client.post(stream.url, json=ping, headers=bearer(token))
            ).status_code == 202
            assert await stream.message() == {"jsonrpc": "2.0", "id": 4, "result": {}}


async def test_s85_running_requests_per_stream_are_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(legacy_sse, "MAX_RUNNING_PER_SESSION", 2)
    cancelled: list[str] = []
    with serve(asking_registry(cancelled), database(tmp_path / "rs.db")) as server:
        token = server.token()
        async with (
            httpx.AsyncClient(timeout=10) as client,
            open_stream(client, server, bearer(token)) as stream,
        ):
            await initialized(stream, client, token)
            for request_id in (2, 3):
                posted = await client.post(
                    stream.url, json=call(request_id, "wait_forever", {}), headers=bearer(token)
                )
                assert posted.status_code == 202
            refused = await client.post(
                stream.url, json=call(4, "wait_forever", {}), headers=bearer(token)
            )
            assert refused.status_code == 429
            assert refused.headers["retry-after"] == "1"
        # The stream ended: its running requests were cancelled with it.
        for _ in range(50):
            if len(cancelled) == 2:
                break
            await asyncio.sleep(0.05)
        assert cancelled == ["wait_forever", "wait_forever"]


async def test_a_message_for_a_closed_stream_is_dropped(tmp_path: Path) -> None:
    """A handler still running elsewhere when its stream closed does not fail on its reply."""
    db = Database(database(tmp_path / "rs.db"))
    bus = Bus()
    log = EventLog(db, bus)
    sessions = SessionStore(db, 3600.0)
    alice = Principal("alice", "c1", frozenset({"mcp"}), "t", 0)
    session = await sessions.create(alice, "2024-11-05", {}, {})
    channel = LegacyChannel(
        log=log, pending=PendingRequests(db, bus), session_id=session.id, sse_allowed=True
    )
    await channel.send({"jsonrpc": "2.0", "method": "notifications/progress", "params": {}})
    assert [e.payload for e in await log.after(session.id, STANDALONE_STREAM, 0)] != []
    await sessions.delete(session.id)
    await channel.send({"jsonrpc": "2.0", "id": 1, "result": {}}, final=True)
    assert channel.finished
    await log.watcher.aclose()
