"""One 2026-07-28 response (resourceserver.mcp.live.LiveResponse): a handler's first step runs
at once in the request's task, the rest in a task of its own; JSON when it ends before any
notification, a stream otherwise; a failure answers with the fallback, and a cancelled
request cancels the handler wherever it is."""

from __future__ import annotations

import asyncio
import contextvars
import json
from typing import Any

import pytest
from starlette.responses import StreamingResponse

from resourceserver.mcp.live import JsonBody, LiveResponse, Reply

FALLBACK = {"jsonrpc": "2.0", "id": 1, "error": {"code": -32603, "message": "Internal error"}}
WHERE: contextvars.ContextVar[str] = contextvars.ContextVar("where", default="outside")


def live() -> LiveResponse:
    return LiveResponse(lambda: dict(FALLBACK), json_wait=5.0, keepalive=5.0)


def result(value: Any) -> Reply:
    return {"jsonrpc": "2.0", "id": 1, "result": value}, 200


async def body_of(response: Any) -> list[Any]:
    if isinstance(response, JsonBody):
        return [json.loads(bytes(response.body))]
    assert isinstance(response, StreamingResponse)
    chunks = [chunk async for chunk in response.body_iterator]
    text = "".join(c.decode() if isinstance(c, bytes) else str(c) for c in chunks)
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]


async def test_a_handler_that_does_not_wait_is_answered_with_json() -> None:
    async def work() -> Reply:
        WHERE.set("inside")  # its own context, as a task's
        return result("at once")

    response = await live().respond(work())
    assert await body_of(response) == [result("at once")[0]]
    assert WHERE.get() == "outside"


async def test_notifications_of_the_first_step_make_a_stream_ending_with_the_answer() -> None:
    answer = live()

    async def work() -> Reply:
        await answer.notify("notifications/progress", {"progress": 1})
        return result("after a note")

    messages = await body_of(await answer.respond(work()))
    assert [m.get("method") for m in messages] == ["notifications/progress", None]
    assert messages[-1]["result"] == "after a note"


async def test_a_handler_that_waits_goes_on_in_a_task() -> None:
    answer = live()

    async def work() -> Reply:
        await asyncio.sleep(0.01)
        await answer.notify("notifications/progress", {"progress": 1})
        await asyncio.sleep(0.01)
        return result("later")

    messages = await body_of(await answer.respond(work()))
    assert [m.get("method") for m in messages] == ["notifications/progress", None]
    assert messages[-1]["result"] == "later"

    async def quiet() -> Reply:
        await asyncio.sleep(0.01)
        return result("quietly later")

    assert await body_of(await live().respond(quiet())) == [result("quietly later")[0]]


@pytest.mark.parametrize("waits_first", [False, True])
async def test_a_failing_handler_is_answered_with_the_fallback(
    waits_first: bool, caplog: pytest.LogCaptureFixture
) -> None:
    async def work() -> Reply:
        if waits_first:
            await asyncio.sleep(0)
        raise RuntimeError("a bug")

    assert await body_of(await live().respond(work())) == [FALLBACK]
    assert "MCP request failed outside its handler" in caplog.text


async def test_cancelling_the_request_cancels_a_waiting_handler() -> None:
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def work() -> Reply:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return result("never")

    request = asyncio.ensure_future(live().respond(work()))
    await started.wait()
    await asyncio.sleep(0)
    request.cancel()
    with pytest.raises(asyncio.CancelledError):
        await request
    await asyncio.wait_for(cancelled.wait(), 5)
