"""S72: a task (``io.modelcontextprotocol/tasks``) is visible, pollable, answerable and
cancellable only by its own principal; unknown and foreign task ids answer alike. Task state
is in SQL, so any worker answers ``tasks/get``/``tasks/update``/``tasks/cancel``, and a
cancellation reaches the worker running the tool; tasks are purged after their TTL. Runs on
SQLite and PostgreSQL, with two apps on one database as two workers. (SEP-2663.)"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, select

from resourceserver.mcp import Context, Registry, load_tool_modules
from resourceserver.mcp.transport import TransportOptions
from resourceserver.storage import McpTask, create_tables, sqlite_engine
from tests.support.modern_mcp import TASKS, ModernApp, ModernHttp, modern_app
from tests.support.tokens import make_signing_key

FAST = TransportOptions(poll_interval=0.05, cancel_poll_interval=0.1, task_after_seconds=0.2)
WITH_TASKS = {"elicitation": {}, **TASKS}
STOPPED: list[str] = []


def tools() -> Registry:
    registry = load_tool_modules(["tests.conformance.tools"])

    @registry.tool(task="optional")
    async def long_job(ctx: Context, label: str) -> str:
        """Runs as a task until cancelled."""
        await ctx.continue_as_task()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            STOPPED.append(label)
            raise
        return "never"

    @registry.tool(task="optional", task_after=0.1)
    async def drifts_into_a_task(label: str) -> str:
        """Becomes a task only because it runs longer than its task_after."""
        await asyncio.sleep(0.5)
        return f"finished {label}"

    return registry


def engine_for(database_url: str) -> Engine:
    if database_url.startswith("sqlite:///"):
        engine = sqlite_engine(database_url.removeprefix("sqlite:///"))
    else:
        engine = create_engine(database_url, pool_size=5)
    create_tables(engine)
    return engine


@pytest.fixture
def engines(database_url: str) -> Iterator[tuple[Engine, Engine]]:
    first, second = engine_for(database_url), engine_for(database_url)
    yield first, second
    first.dispose()
    second.dispose()


@pytest.fixture
def workers(engines: tuple[Engine, Engine]) -> tuple[ModernApp, ModernApp]:
    key = make_signing_key()
    keys = [b"k" * 32]
    return (
        modern_app(tools(), engines[0], FAST, keys=keys, signing_key=key),
        modern_app(tools(), engines[1], FAST, keys=keys, signing_key=key),
    )


@pytest.fixture
async def clients(
    workers: tuple[ModernApp, ModernApp],
) -> AsyncIterator[tuple[ModernHttp, ModernHttp]]:
    a, b = workers
    async with a.client() as on_a, b.client() as on_b:
        yield ModernHttp(on_a, a.token(), WITH_TASKS), ModernHttp(on_b, b.token(), WITH_TASKS)
    await a.endpoint.aclose()
    await b.endpoint.aclose()


async def start(mcp: ModernHttp, name: str, arguments: dict[str, Any]) -> str:
    created = await mcp.result("tools/call", {"name": name, "arguments": arguments})
    assert created["resultType"] == "task", created
    assert "result" not in created and "requestState" not in created
    return str(created["taskId"])


async def settle(mcp: ModernHttp, task_id: str, status: str, timeout: float = 10) -> Any:
    async with asyncio.timeout(timeout):
        while True:
            task = await mcp.result("tasks/get", {"taskId": task_id})
            if task["status"] == status or task["status"] in ("completed", "failed", "cancelled"):
                return task
            await asyncio.sleep(0.05)


async def test_s72_only_the_owner_sees_polls_answers_or_cancels_a_task(
    clients: tuple[ModernHttp, ModernHttp], workers: tuple[ModernApp, ModernApp]
) -> None:
    alice, _ = clients
    task_id = await start(alice, "confirm_delete", {"filename": "a.txt"})
    unknown = await alice.call("tasks/get", {"taskId": "no-such-task"})
    assert unknown["error"] == {
        "code": -32602,
        "message": "Failed to retrieve task: Task not found",
    }
    app = workers[0]
    for subject, client_id in (("bob", "c1"), ("alice", "another-client")):
        intruder = ModernHttp(alice.client, app.token(subject=subject, client_id=client_id), TASKS)
        for method, params in (
            ("tasks/get", {"taskId": task_id}),
            (
                "tasks/update",
                {
                    "taskId": task_id,
                    "inputResponses": {
                        "elicitation-1": {"action": "accept", "content": {"confirm": True}}
                    },
                },
            ),
            ("tasks/cancel", {"taskId": task_id}),
        ):
            answer = await intruder.call(method, params)
            assert answer["error"] == unknown["error"], (subject, client_id, method, answer)
    waiting = await settle(alice, task_id, "input_required")
    assert waiting["status"] == "input_required"  # the intruders changed nothing
    await alice.result("tasks/cancel", {"taskId": task_id})
    assert (await settle(alice, task_id, "cancelled"))["status"] == "cancelled"


async def test_s72_tasks_need_the_extension_declared(
    clients: tuple[ModernHttp, ModernHttp],
) -> None:
    alice, _ = clients
    plain = ModernHttp(alice.client, alice.token, {"elicitation": {}})
    for method in ("tasks/get", "tasks/update", "tasks/cancel"):
        response = await plain.post(method, {"taskId": "x", "inputResponses": {}})
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["code"] == -32021
        assert error["data"] == {
            "requiredCapabilities": {"extensions": {"io.modelcontextprotocol/tasks": {}}}
        }
    required = await plain.post("tools/call", {"name": "failing_job", "arguments": {}})
    assert required.json()["error"]["code"] == -32021
    inline = await plain.result("tools/call", {"name": "slow_compute", "arguments": {"seconds": 0}})
    assert inline["resultType"] == "complete" and "taskId" not in inline


async def test_s72_any_worker_polls_and_answers_a_task_running_on_another(
    clients: tuple[ModernHttp, ModernHttp],
) -> None:
    on_a, on_b = clients
    task_id = await start(on_a, "confirm_delete", {"filename": "b.txt"})
    waiting = await settle(on_b, task_id, "input_required")
    (key,) = waiting["inputRequests"]
    assert waiting["inputRequests"][key]["method"] == "elicitation/create"
    ack = await on_b.result(
        "tasks/update",
        {
            "taskId": task_id,
            "inputResponses": {
                key: {"action": "accept", "content": {"confirm": True}},
                "stray": {},
            },
        },
    )
    assert ack == {"resultType": "complete", "_meta": ack["_meta"]}
    done = await settle(on_b, task_id, "completed")
    assert done["status"] == "completed"
    assert done["result"]["content"][0]["text"] == "b.txt deleted"


async def test_s72_cancellation_reaches_the_worker_running_the_tool(
    clients: tuple[ModernHttp, ModernHttp],
) -> None:
    on_a, on_b = clients
    task_id = await start(on_a, "long_job", {"label": "cross-worker"})
    assert (await on_b.result("tasks/get", {"taskId": task_id}))["status"] == "working"
    await on_b.result("tasks/cancel", {"taskId": task_id})
    cancelled = await settle(on_a, task_id, "cancelled", timeout=5)
    assert cancelled["status"] == "cancelled"
    assert "cross-worker" in STOPPED
    # A terminal task: cancelling again is the same empty acknowledgment.
    again = await on_b.result("tasks/cancel", {"taskId": task_id})
    assert set(again) == {"resultType", "_meta"}


async def test_s72_a_long_call_drifts_into_a_task(clients: tuple[ModernHttp, ModernHttp]) -> None:
    on_a, on_b = clients
    task_id = await start(on_a, "drifts_into_a_task", {"label": "late"})
    done = await settle(on_b, task_id, "completed")
    assert done["result"]["content"][0]["text"] == "finished late"


async def test_s72_failures_and_tool_errors_end_tasks_as_the_extension_says(
    clients: tuple[ModernHttp, ModernHttp],
) -> None:
    on_a, on_b = clients
    tool_error = await settle(on_b, await start(on_a, "failing_job", {}), "completed")
    assert tool_error["status"] == "completed" and tool_error["result"]["isError"] is True
    crashed = await settle(on_b, await start(on_a, "protocol_error_job", {}), "failed")
    assert crashed["status"] == "failed"
    assert crashed["error"]["code"] == -32603 and "result" not in crashed


async def test_s72_tasks_are_purged_after_their_ttl(
    engines: tuple[Engine, Engine], tmp_path: Path
) -> None:
    app = modern_app(tools(), engines[0], TransportOptions(task_ttl_seconds=1))
    async with app.client() as client:
        mcp = ModernHttp(client, app.token(), WITH_TASKS)
        task_id = await start(mcp, "slow_compute", {"seconds": 0})
        assert (await settle(mcp, task_id, "completed"))["ttlMs"] == 1000
        await asyncio.sleep(1.2)
        gone = await mcp.call("tasks/get", {"taskId": task_id})
        assert gone["error"]["code"] == -32602
    assert await app.endpoint.tasks.purge_expired() >= 1
    with engines[0].connect() as connection:
        assert connection.execute(select(McpTask.id).where(McpTask.id == task_id)).first() is None
    await app.endpoint.aclose()
