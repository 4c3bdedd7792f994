"""S73: ``subscriptions/listen`` delivers only notifications the listener asked for and its
token may see (resource updates aimed at one user, task statuses of its own tasks), from any
worker; a revoked or expired token ends the stream within the revocation bound; a graceful
server close answers the listen request. Runs on SQLite and PostgreSQL with two apps on one
database as two workers, each on a real socket. (MCP 2026-07-28 "Subscriptions".)"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from typing import Any

import pytest

from resourceserver.mcp.transport import TransportOptions
from tests.resourceserver.mcp.test_tasks import engine_for, tools
from tests.support.modern_mcp import (
    TASKS,
    ListenReader,
    ModernApp,
    ModernHttp,
    modern_app,
    on_socket,
)
from tests.support.tokens import make_signing_key

SUB = "io.modelcontextprotocol/subscriptionId"
FAST = TransportOptions(
    poll_interval=0.05, broadcast_poll_interval=0.1, listen_revalidate_seconds=0.2
)


@pytest.fixture
def workers(database_url: str) -> Iterator[tuple[ModernApp, ModernApp]]:
    key = make_signing_key()
    engines = [engine_for(database_url), engine_for(database_url)]
    apps = [
        modern_app(tools(), engine, FAST, keys=[b"s" * 32], signing_key=key) for engine in engines
    ]
    with ExitStack() as stack:
        yield stack.enter_context(on_socket(apps[0])), stack.enter_context(on_socket(apps[1]))
    for engine in engines:
        engine.dispose()


@pytest.fixture
async def pair(
    workers: tuple[ModernApp, ModernApp],
) -> AsyncIterator[tuple[ModernHttp, ModernHttp]]:
    a, b = workers
    async with a.client() as on_a, b.client() as on_b:
        yield ModernHttp(on_a, a.token(), TASKS), ModernHttp(on_b, b.token(), TASKS)


def notes(reader: ListenReader, method: str) -> list[dict[str, Any]]:
    return [m["params"] for m in reader.messages if m.get("method") == method]


async def test_s73_acknowledged_first_then_only_what_was_asked(
    pair: tuple[ModernHttp, ModernHttp], workers: tuple[ModernApp, ModernApp]
) -> None:
    on_a, _ = pair
    wanted = {
        "toolsListChanged": True,
        "resourceSubscriptions": ["test://watched-resource", "test://no-such-thing"],
        "taskIds": ["someone-elses-or-unknown"],
    }
    reader = await ListenReader.open(on_a, wanted, request_id=77)
    try:
        ack = reader.messages[0]
        assert ack["method"] == "notifications/subscriptions/acknowledged"
        assert ack["params"]["_meta"] == {SUB: 77}
        # Unknown resources and tasks that are not the listener's are not honoured.
        assert ack["params"]["notifications"] == {
            "toolsListChanged": True,
            "resourceSubscriptions": ["test://watched-resource"],
            "taskIds": [],
        }
        other = workers[1].endpoint
        await other.notify_list_changed("prompts")  # not asked for
        await other.notify_resource_updated("test://static-text")  # not subscribed
        await other.notify_list_changed("tools")
        await other.notify_resource_updated("test://watched-resource")
        await reader.until(lambda: len(reader.messages) >= 3, "two notifications")
        await asyncio.sleep(0.3)
        assert reader.methods() == [
            "notifications/subscriptions/acknowledged",
            "notifications/tools/list_changed",
            "notifications/resources/updated",
        ]
        assert all(m["params"]["_meta"] == {SUB: 77} for m in reader.messages)
        assert (
            notes(reader, "notifications/resources/updated")[0]["uri"] == "test://watched-resource"
        )
    finally:
        await reader.close()


async def test_s73_updates_aimed_at_one_user_reach_only_that_user(
    workers: tuple[ModernApp, ModernApp],
) -> None:
    a, b = workers
    uri = "test://watched-resource"
    async with a.client() as client:
        alice = await ListenReader.open(
            ModernHttp(client, a.token()), {"resourceSubscriptions": [uri]}
        )
        bob = await ListenReader.open(
            ModernHttp(client, a.token(subject="bob")), {"resourceSubscriptions": [uri]}
        )
        try:
            await b.endpoint.notify_resource_updated(uri, subject="bob")
            await bob.until(lambda: len(bob.messages) == 2, "bob's update")
            await asyncio.sleep(0.3)
            assert len(alice.messages) == 1  # the acknowledgment only
        finally:
            await alice.close()
            await bob.close()


async def test_s73_task_statuses_of_own_tasks_from_another_worker(
    pair: tuple[ModernHttp, ModernHttp],
) -> None:
    on_a, on_b = pair
    asking = ModernHttp(on_b.client, on_b.token, {"elicitation": {}, **TASKS})
    created = await asking.result(
        "tools/call", {"name": "confirm_delete", "arguments": {"filename": "x"}}
    )
    task_id = created["taskId"]
    reader = await ListenReader.open(on_a, {"taskIds": [task_id]})
    try:
        assert reader.messages[0]["params"]["notifications"] == {"taskIds": [task_id]}
        async with asyncio.timeout(5):
            while (state := await on_a.result("tasks/get", {"taskId": task_id}))["status"] != (
                "input_required"
            ):
                await asyncio.sleep(0.05)
        (key,) = state["inputRequests"]
        await on_a.result(
            "tasks/update",
            {
                "taskId": task_id,
                "inputResponses": {key: {"action": "accept", "content": {"confirm": True}}},
            },
        )
        await reader.until(
            lambda: any(n["status"] == "completed" for n in notes(reader, "notifications/tasks")),
            "completion",
        )
        final = next(n for n in notes(reader, "notifications/tasks") if n["status"] == "completed")
        assert final["taskId"] == task_id
        assert final["result"]["content"][0]["text"] == "x deleted"
    finally:
        await reader.close()


async def test_s73_task_ids_need_the_extension(pair: tuple[ModernHttp, ModernHttp]) -> None:
    on_a, _ = pair
    plain = ModernHttp(on_a.client, on_a.token, {})
    reader = ListenReader(plain, {"taskIds": ["x"]})
    await reader.ended.wait()
    assert reader.status == 400
    assert reader.messages[0]["error"]["code"] == -32021


async def test_s73_a_revoked_token_ends_the_stream(workers: tuple[ModernApp, ModernApp]) -> None:
    a, _ = workers
    token = a.token(jti="listener-token")
    async with a.client() as client:
        reader = await ListenReader.open(ModernHttp(client, token), {"toolsListChanged": True})
        revoked_at = time.monotonic()
        a.revocations.revoked.add("listener-token")
        async with asyncio.timeout(5):
            await reader.ended.wait()
    # Within the bound: a re-check every listen_revalidate_seconds (0.2 s here; 1 s by default).
    assert time.monotonic() - revoked_at < 2.0
    assert reader.methods()[-1] == "notifications/cancelled"
    assert reader.messages[-1]["params"]["reason"] == "the access token was revoked"
    assert reader.messages[-1]["params"]["requestId"] == "listen-1"


async def test_s73_an_expiring_token_ends_the_stream(workers: tuple[ModernApp, ModernApp]) -> None:
    a, _ = workers
    async with a.client() as client:
        reader = await ListenReader.open(
            ModernHttp(client, a.token(lifetime=1)), {"promptsListChanged": True}
        )
        async with asyncio.timeout(8):
            await reader.ended.wait()
    assert reader.methods()[-1] == "notifications/cancelled"


async def test_s73_a_graceful_close_answers_the_listen_request(
    workers: tuple[ModernApp, ModernApp],
) -> None:
    a, _ = workers
    async with a.client() as client:
        reader = await ListenReader.open(ModernHttp(client, a.token()), {"toolsListChanged": True})
        a.endpoint.drain()
        async with asyncio.timeout(5):
            await reader.ended.wait()
    assert reader.messages[-1] == {
        "jsonrpc": "2.0",
        "id": "listen-1",
        "result": {"resultType": "complete", "_meta": {SUB: "listen-1"}},
    }


async def test_s73_listeners_sharing_a_token_share_one_check_per_interval(
    workers: tuple[ModernApp, ModernApp],
) -> None:
    """One shared watcher per worker: N listeners with one token cost one re-check per round
    (not N), and a revocation still ends every one of them with notifications/cancelled."""
    a, _ = workers
    checks: list[str] = []
    revocations = a.revocations

    async def counted(jti: str) -> bool:
        checks.append(jti)
        return jti in revocations.revoked

    revocations.is_revoked = counted  # type: ignore[method-assign]
    token = a.token(jti="shared-token")
    watch = a.endpoint.modern.listen_watch
    async with a.client() as client:
        readers = [
            await ListenReader.open(ModernHttp(client, token), {"toolsListChanged": True})
            for _ in range(5)
        ]
        rounds, seen = watch.rounds, checks.count("shared-token")
        async with asyncio.timeout(10):
            while watch.rounds < rounds + 4:
                await asyncio.sleep(0.05)
        # One check of the shared token per round (give or take the round in progress).
        assert checks.count("shared-token") - seen <= watch.rounds - rounds + 1
        a.revocations.revoked.add("shared-token")
        async with asyncio.timeout(5):
            for reader in readers:
                await reader.ended.wait()
    for reader in readers:
        assert reader.methods()[-1] == "notifications/cancelled"
        assert reader.messages[-1]["params"]["reason"] == "the access token was revoked"
