"""The official MCP Python SDK client (``mcp`` 2.x) against ``charter serve``, protocol 2026-07-28.

In its default mode the SDK probes ``server/discover`` and adopts the stateless revision: no
``initialize`` is ever sent (a recording of every JSON-RPC message it POSTs shows it). It runs
the whole OAuth flow, lists tools, calls a tool that elicits (the question comes back as an
``InputRequiredResult``, the SDK's elicitation callback answers it and the call is retried with
the sealed ``requestState``), and a task tool (through a small client extension for
``io.modelcontextprotocol/tasks`` that polls ``tasks/get``, as SEP-2663 describes). The same
client pinned to the handshake era (``mode="legacy"``) still works, elicitation included.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

import anyio
import httpx2
import mcp_types
import pytest
from mcp.client.client import Client
from mcp.client.extension import ClaimContext, ClientExtension, ResultClaim
from mcp.client.streamable_http import streamable_http_client
from pydantic import Field

from tests.support.charter_process import CharterProcess, run_charter
from tests.support.headless import HeadlessUser
from tests.support.sdk_client import MemoryStorage, Observed, make_provider

pytestmark = pytest.mark.e2e

TASKS = "io.modelcontextprotocol/tasks"


class TaskIdParams(mcp_types.RequestParams):
    task_id: str = Field(alias="taskId")


class GetTaskRequest(mcp_types.Request[TaskIdParams, Literal["tasks/get"]]):
    method: Literal["tasks/get"] = "tasks/get"
    name_param = "taskId"


class TaskState(mcp_types.Result):
    """``tasks/get``'s DetailedTask (the fields this test reads)."""

    result_type: str = "complete"
    task_id: str
    status: str
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


class CreatedTask(mcp_types.Result):
    """``CreateTaskResult``: the ``resultType: "task"`` answer of a tools/call."""

    result_type: Literal["task"] = "task"
    task_id: str
    status: str
    poll_interval_ms: int | None = None


class TasksExtension(ClientExtension):
    """Declares the tasks extension and finishes a task by polling ``tasks/get``."""

    identifier = TASKS

    def __init__(self) -> None:
        self.polls = 0

    def claims(self) -> list[ResultClaim[Any]]:
        return [ResultClaim(result_type="task", model=CreatedTask, resolve=self.resolve)]

    async def resolve(self, created: CreatedTask, ctx: ClaimContext) -> mcp_types.CallToolResult:
        request = GetTaskRequest(params=TaskIdParams(taskId=created.task_id))
        with anyio.fail_after(30):
            while True:
                state = await ctx.session.send_request(request, TaskState)
                self.polls += 1
                if state.status in ("completed", "failed", "cancelled"):
                    break
                await anyio.sleep((created.poll_interval_ms or 200) / 1000)
        assert state.status == "completed", state
        return mcp_types.CallToolResult.model_validate(state.result)


async def answer_elicitation(_context: Any, params: Any) -> mcp_types.ElicitResult:
    assert "name" in params.message.lower()
    return mcp_types.ElicitResult(action="accept", content={"name": "Ada"})


class Recording(Observed):
    """Also keeps the JSON-RPC method of every message the SDK POSTed."""

    def __init__(self) -> None:
        super().__init__()
        self.methods: list[str] = []

    async def on_request(self, request: httpx2.Request) -> None:
        if request.method == "POST" and request.url.path == "/mcp":
            body = json.loads(request.content or b"{}")
            self.methods.append(str(body.get("method", "(response)")))


@asynccontextmanager
async def sdk(
    charter: CharterProcess, provider: Any, recording: Recording, **options: Any
) -> AsyncIterator[Client]:
    hooks: dict[str, list[Any]] = {
        "request": [recording.on_request],
        "response": [recording.on_response],
    }
    async with httpx2.AsyncClient(auth=provider, event_hooks=hooks, timeout=30) as http:
        transport = streamable_http_client(charter.mcp_url, http_client=http)
        async with Client(
            transport, cache=None, elicitation_callback=answer_elicitation, **options
        ) as client:
            yield client


def text_of(result: mcp_types.CallToolResult) -> str:
    assert not result.is_error, result.content
    block = result.content[0]
    assert isinstance(block, mcp_types.TextContent)
    return block.text


async def test_sdk_default_mode_speaks_2026_07_28_oauth_elicitation_and_tasks(
    tmp_path: Path,
) -> None:
    with run_charter(tmp_path / "data", "--tools", "tests.conformance.tools") as charter:
        assert charter.admin_password is not None
        user = HeadlessUser("admin", charter.admin_password)
        storage = MemoryStorage()
        provider = make_provider(charter, user, storage)
        recording = Recording()
        tasks = TasksExtension()
        try:
            async with sdk(charter, provider, recording, extensions=[tasks]) as client:
                assert client.protocol_version == "2026-07-28"
                assert client.session.discover_result is not None
                assert client.session.initialize_result is None
                # The whole OAuth flow ran: a 401 first, a registration, one consent.
                assert recording.statuses("/mcp")[0] == 401
                assert 201 in recording.statuses("/register")
                assert len(user.consent_pages) == 1

                names = {tool.name for tool in (await client.list_tools()).tools}
                assert {"whoami", "test_input_required_result_elicitation", "slow_compute"} <= names

                greeted = await client.call_tool("test_input_required_result_elicitation", {})
                assert text_of(greeted) == "Hello, Ada!"
                # One round asked, the retry with the answer finished the call.
                calls = [method for method in recording.methods if method == "tools/call"]
                assert len(calls) == 2

                computed = await client.call_tool("slow_compute", {"seconds": 0.3, "label": "sdk"})
                assert text_of(computed) == "computed sdk in 0.3s"
                assert tasks.polls >= 1 and "tasks/get" in recording.methods
        finally:
            await user.aclose()
        # Never a handshake: the SDK probed server/discover and stayed stateless.
        assert "server/discover" in recording.methods
        assert "initialize" not in recording.methods
        assert "notifications/initialized" not in recording.methods
        assert all(method != "(response)" for method in recording.methods)


async def test_sdk_pinned_to_the_handshake_era_still_works(tmp_path: Path) -> None:
    with run_charter(tmp_path / "data", "--tools", "tests.conformance.tools") as charter:
        assert charter.admin_password is not None
        user = HeadlessUser("admin", charter.admin_password)
        provider = make_provider(charter, user, MemoryStorage())
        recording = Recording()
        try:
            async with sdk(charter, provider, recording, mode="legacy") as client:
                assert client.protocol_version == "2025-11-25"
                assert client.session.initialize_result is not None
                me = await client.call_tool("whoami", {})
                assert me.structured_content is not None
                assert me.structured_content["client_id"].startswith("dcr_")
                # Elicitation travels as a server-to-client request on the SSE stream here.
                answered = await client.call_tool("test_elicitation", {"message": "Your name?"})
                assert '"name": "Ada"' in text_of(answered)
        finally:
            await user.aclose()
        assert recording.methods[0] == "initialize"
        assert "server/discover" not in recording.methods
