"""The tasks extension (``io.modelcontextprotocol/tasks``, SEP-2663): running tools as tasks,
and ``tasks/get``, ``tasks/update``, ``tasks/cancel``.

A tool registered with ``task="optional"`` or ``"required"`` and called by a client that
declared the extension runs inline until it calls ``Context.continue_as_task()`` or runs
longer than its ``task_after`` seconds; then the call is answered with a ``CreateTaskResult``
and the tool goes on in the background on the worker that started it (:class:`TaskRunner`).
The task's state is in SQL (:mod:`resourceserver.mcp.task_store`), so any worker answers
``tasks/get`` and ``tasks/update``; ``tasks/cancel`` on another worker marks the row, and the
worker running the tool sees it within ``cancel_interval`` (at once on PostgreSQL, woken by
``NOTIFY``) and cancels the tool.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from resourceserver.mcp.errors import INTERNAL_ERROR, INVALID_PARAMS, JsonRpcError
from resourceserver.mcp.interrupts import Interrupt, ProtocolFault
from resourceserver.mcp.task_store import TaskNotFoundError, TaskStore
from resourceserver.principal import Principal

logger = logging.getLogger(__name__)

JsonObject = dict[str, Any]
TASKS_EXTENSION = "io.modelcontextprotocol/tasks"
TASK_METHODS = frozenset({"tasks/get", "tasks/update", "tasks/cancel"})


class TaskQuestions:
    """The :class:`~resourceserver.mcp.mrtr.TaskInput` of one task."""

    def __init__(self, store: TaskStore, task_id: str) -> None:
        self.store = store
        self.task_id = task_id

    async def ask(self, key: str, question: JsonObject) -> JsonObject:
        return await self.store.ask(self.task_id, key, question)


def _outcome(handler: asyncio.Task[JsonObject], asked_to_stop: bool) -> dict[str, Any]:
    """How a finished tool ends its task: status and result or error."""
    if handler.cancelled():
        if asked_to_stop:
            return {"status": "cancelled", "message": "cancelled at the client's request"}
        return {"status": "failed", "error": {"code": INTERNAL_ERROR, "message": "cancelled"}}
    failure = handler.exception()
    if failure is None:
        return {"status": "completed", "result": handler.result()}
    if isinstance(failure, ProtocolFault):
        failure = failure.error
    if isinstance(failure, JsonRpcError):
        return {"status": "failed", "error": failure.to_json(), "message": failure.message}
    if not isinstance(failure, Interrupt):
        logger.error("task tool failed", exc_info=failure)
    error = {"code": INTERNAL_ERROR, "message": "Internal error"}
    return {"status": "failed", "error": error, "message": "the tool failed on the server"}


class TaskRunner:
    """The tools running as tasks in this worker."""

    def __init__(self, store: TaskStore, *, cancel_interval: float = 0.5) -> None:
        self.store = store
        self.cancel_interval = cancel_interval
        self.running: dict[str, asyncio.Task[JsonObject]] = {}
        self._stopping: set[str] = set()
        self._recorders: set[asyncio.Task[None]] = set()
        self._watcher: asyncio.Task[None] | None = None

    def adopt(self, task_id: str, handler: asyncio.Task[JsonObject]) -> None:
        """Track ``handler`` until it ends, then record its outcome in the task."""
        self.running[task_id] = handler
        handler.add_done_callback(lambda done: self._settle(task_id, done))
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.create_task(self._watch())

    def cancel_here(self, task_id: str) -> bool:
        """Cancel the task's tool when it runs in this worker."""
        handler = self.running.get(task_id)
        if handler is None:
            return False
        self._stopping.add(task_id)
        handler.cancel()
        return True

    def _settle(self, task_id: str, handler: asyncio.Task[JsonObject]) -> None:
        self.running.pop(task_id, None)
        outcome = _outcome(handler, task_id in self._stopping)
        self._stopping.discard(task_id)
        recorder = asyncio.create_task(self.store.finish(task_id, **outcome))
        self._recorders.add(recorder)
        recorder.add_done_callback(self._recorders.discard)

    async def _watch(self) -> None:
        with self.store.bus.watch("task-cancel") as woken:
            while self.running:
                woken.clear()
                try:
                    wanted = await self.store.cancel_requested(list(self.running))
                except Exception as exc:  # keep watching through outages (S61)
                    logger.warning("cannot read task cancellations (%s)", type(exc).__name__)
                    wanted = set()
                for task_id in wanted:
                    self.cancel_here(task_id)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(woken.wait(), self.cancel_interval)

    async def aclose(self) -> None:
        """Shutdown: stop every running tool; their tasks end as failed."""
        handlers = list(self.running.items())
        for _task_id, handler in handlers:
            handler.cancel()
        for _task_id, handler in handlers:
            with contextlib.suppress(BaseException):
                await handler
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        for recorder in list(self._recorders):
            with contextlib.suppress(Exception):
                await recorder
        await self.store.fail_unfinished(
            [task_id for task_id, _ in handlers], "the server stopped before the task finished"
        )


def _task_id(params: JsonObject) -> str:
    task_id = params.get("taskId")
    if not isinstance(task_id, str) or not task_id:
        raise JsonRpcError(INVALID_PARAMS, "Invalid params: 'taskId' must be a non-empty string")
    if len(task_id) > 64:
        raise TaskNotFoundError()
    return task_id


class TaskMethods:
    """``tasks/get``, ``tasks/update`` and ``tasks/cancel`` for one principal's tasks."""

    def __init__(self, store: TaskStore, runner: TaskRunner) -> None:
        self.store = store
        self.runner = runner

    async def handle(self, method: str, principal: Principal, params: JsonObject) -> JsonObject:
        """The result of one tasks method (raises JsonRpcError)."""
        task_id = _task_id(params)
        if method == "tasks/get":
            view = await self.store.get(task_id, principal)
            return view.to_json(detailed=True)
        if method == "tasks/update":
            answers = params.get("inputResponses")
            if not isinstance(answers, dict):
                raise JsonRpcError(
                    INVALID_PARAMS, "Invalid params: 'inputResponses' must be an object"
                )
            await self.store.deliver(task_id, principal, answers)
            return {}
        if not await self.store.request_cancel(task_id, principal):
            raise TaskNotFoundError()
        self.runner.cancel_here(task_id)
        return {}
