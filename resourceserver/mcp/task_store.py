"""Tasks in SQL: the state every worker reads and writes (MCP tasks extension, SEP-2663).

A task belongs to the principal (subject and client) whose ``tools/call`` created it; for
anyone else it does not exist (SECURITY-CASES S72). Its questions wait in ``input_requests``
until ``tasks/update`` (on any worker) moves the answers to ``input_responses``, where the
worker running the tool takes them. Every change is announced on the bus (key
``task:<id>``) and published as a change notification for ``subscriptions/listen``. Rows are
deleted after their TTL (at most once a minute, by whoever creates a task).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from resourceserver.mcp.broadcast import Broadcasts
from resourceserver.mcp.bus import Bus
from resourceserver.mcp.errors import INVALID_PARAMS, ClientRequestError, JsonRpcError
from resourceserver.mcp.results import shape_problem
from resourceserver.mcp.wakeups import announce
from resourceserver.principal import Principal
from resourceserver.storage import Database, McpTask

JsonObject = dict[str, Any]
T = TypeVar("T")

TERMINAL = frozenset({"completed", "failed", "cancelled"})
#: Suggested polling interval sent to clients, milliseconds.
POLL_INTERVAL_MS = 500
#: Longest status message stored.
MAX_STATUS_MESSAGE = 1000


class TaskNotFoundError(JsonRpcError):
    """Unknown, expired, or another principal's task: all answered alike (S72)."""

    def __init__(self) -> None:
        super().__init__(INVALID_PARAMS, "Failed to retrieve task: Task not found")


def iso(timestamp: float) -> str:
    """ISO 8601 in UTC with milliseconds (``2026-07-28T10:30:00.000Z``)."""
    moment = datetime.fromtimestamp(timestamp, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass(frozen=True, slots=True)
class TaskView:
    """A snapshot of one task row."""

    id: str
    subject: str
    client_id: str
    status: str
    status_message: str | None
    input_requests: JsonObject
    result: JsonObject | None
    error: JsonObject | None
    created_at: float
    updated_at: float
    expires_at: float

    def to_json(self, detailed: bool = True) -> JsonObject:
        """The wire ``Task`` (``detailed``: the ``DetailedTask`` of ``tasks/get``)."""
        out: JsonObject = {
            "taskId": self.id,
            "status": self.status,
            "createdAt": iso(self.created_at),
            "lastUpdatedAt": iso(self.updated_at),
            "ttlMs": int((self.expires_at - self.created_at) * 1000),
            "pollIntervalMs": POLL_INTERVAL_MS,
        }
        if self.status_message:
            out["statusMessage"] = self.status_message
        if detailed and self.status == "input_required":
            out["inputRequests"] = dict(self.input_requests)
        if detailed and self.status == "completed" and self.result is not None:
            out["result"] = self.result
        if detailed and self.status == "failed" and self.error is not None:
            out["error"] = self.error
        return out


def _view(row: McpTask) -> TaskView:
    return TaskView(
        id=row.id,
        subject=row.subject,
        client_id=row.client_id,
        status=row.status,
        status_message=row.status_message,
        input_requests=dict(row.input_requests or {}),
        result=row.result,
        error=row.error,
        created_at=row.created_at,
        updated_at=row.updated_at,
        expires_at=row.expires_at,
    )


def _owned(db: Session, task_id: str, principal: Principal, now: float) -> McpTask | None:
    row = db.get(McpTask, task_id, with_for_update=True)
    if row is None or row.expires_at <= now:
        return None
    if (row.subject, row.client_id) != (principal.subject, principal.client_id):
        return None
    return row


def _unique_key(used: list[str], key: str) -> str:
    candidate, number = key, 1
    while candidate in used:
        number += 1
        candidate = f"{key}#{number}"
    return candidate


class TaskStore:
    """Creates, reads and updates tasks."""

    def __init__(
        self,
        db: Database,
        bus: Bus,
        broadcasts: Broadcasts,
        *,
        ttl_seconds: float = 3600.0,
        poll_interval: float = 0.1,
        answer_timeout: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.bus = bus
        self.broadcasts = broadcasts
        self.ttl = ttl_seconds
        self.poll_interval = poll_interval
        self.answer_timeout = answer_timeout
        self.clock = clock
        self._purged_at = 0.0
        # Read-modify-write of a task's JSON columns: PostgreSQL locks the row (FOR UPDATE);
        # SQLite ignores that, so this worker's writers also take turns here.
        self._writing = asyncio.Lock()

    async def _write(self, work: Callable[[Session], T]) -> T:
        async with self._writing:
            return await self.db.run(work)

    @staticmethod
    def key(task_id: str) -> str:
        """The bus key announcing changes of one task."""
        return f"task:{task_id}"

    async def _changed(self, view: TaskView) -> None:
        self.bus.notify(self.key(view.id))
        await self.broadcasts.publish(
            "task", view.id, subject=view.subject, client_id=view.client_id
        )

    async def create(self, principal: Principal, tool: str, message: str | None) -> TaskView:
        """A new working task, committed before it is returned (SEP-2663 §Task Creation)."""
        now = self.clock()
        row = McpTask(
            id=secrets.token_urlsafe(24),
            subject=principal.subject,
            client_id=principal.client_id,
            tool=tool,
            status="working",
            status_message=message[:MAX_STATUS_MESSAGE] if message else None,
            input_requests={},
            input_responses={},
            used_keys=[],
            cancel_requested=False,
            created_at=now,
            updated_at=now,
            expires_at=now + self.ttl,
        )
        purge = now - self._purged_at > 60.0
        if purge:
            self._purged_at = now

        def work(db: Session) -> TaskView:
            if purge:
                db.execute(delete(McpTask).where(McpTask.expires_at < now))
            db.add(row)
            db.flush()
            return _view(row)

        return await self.db.run(work)

    async def get(self, task_id: str, principal: Principal) -> TaskView:
        """The principal's task (raises TaskNotFoundError)."""
        now = self.clock()

        def work(db: Session) -> TaskView | None:
            row = db.get(McpTask, task_id)
            if row is None or row.expires_at <= now:
                return None
            if (row.subject, row.client_id) != (principal.subject, principal.client_id):
                return None
            return _view(row)

        found = await self.db.run(work)
        if found is None:
            raise TaskNotFoundError()
        return found

    async def finish(
        self,
        task_id: str,
        status: str,
        *,
        result: JsonObject | None = None,
        error: JsonObject | None = None,
        message: str | None = None,
    ) -> None:
        """Record the end of a task (a terminal task stays as it is)."""
        now = self.clock()

        def work(db: Session) -> TaskView | None:
            row = db.get(McpTask, task_id, with_for_update=True)
            if row is None or row.status in TERMINAL:
                return None
            row.status, row.result, row.error = status, result, error
            row.status_message = message[:MAX_STATUS_MESSAGE] if message else None
            row.input_requests, row.input_responses = {}, {}
            row.updated_at = now
            announce(db, self.key(task_id))
            return _view(row)

        view = await self._write(work)
        if view is not None:
            await self._changed(view)

    async def request_cancel(self, task_id: str, principal: Principal) -> bool:
        """Mark the principal's task for cancellation; False when not found (S72)."""
        now = self.clock()

        def work(db: Session) -> bool:
            row = _owned(db, task_id, principal, now)
            if row is None:
                return False
            if row.status not in TERMINAL:
                row.cancel_requested = True
                announce(db, "task-cancel")
            return True

        found = await self._write(work)
        if found:
            self.bus.notify("task-cancel")
        return found

    async def cancel_requested(self, task_ids: list[str]) -> set[str]:
        """Which of these tasks were asked to stop."""

        def work(db: Session) -> set[str]:
            query = select(McpTask.id).where(McpTask.id.in_(task_ids), McpTask.cancel_requested)
            return set(db.scalars(query))

        return await self.db.run(work) if task_ids else set()

    async def deliver(self, task_id: str, principal: Principal, answers: JsonObject) -> None:
        """``tasks/update``: take the answers to open questions; ignore every other key."""
        now = self.clock()

        def work(db: Session) -> TaskView | None:
            row = _owned(db, task_id, principal, now)
            if row is None:
                raise TaskNotFoundError()
            waiting = dict(row.input_requests or {})
            taken = {key: answer for key, answer in answers.items() if key in waiting}
            for key, answer in taken.items():
                problem = shape_problem(str(waiting[key].get("method")), answer)
                if problem is not None:
                    raise JsonRpcError(
                        INVALID_PARAMS, f"Invalid params: inputResponses[{key!r}]: {problem}"
                    )
            if not taken:
                return None
            row.input_requests = {k: v for k, v in waiting.items() if k not in taken}
            row.input_responses = {**(row.input_responses or {}), **taken}
            if not row.input_requests and row.status == "input_required":
                row.status = "working"
            row.updated_at = now
            announce(db, self.key(task_id))
            return _view(row)

        view = await self._write(work)
        if view is not None:
            await self._changed(view)

    async def ask(self, task_id: str, key: str, question: JsonObject) -> JsonObject:
        """Put a question on the task and wait for ``tasks/update`` to answer it."""
        name, view = await self._write(lambda db: self._add_question(db, task_id, key, question))
        await self._changed(view)
        deadline = time.monotonic() + self.answer_timeout
        interval = self.poll_interval
        while True:
            with self.bus.watch(self.key(task_id)) as woken:
                answer = await self._write(lambda db: self._take_answer(db, task_id, name))
                if answer is not None:
                    return answer
                if time.monotonic() >= deadline:
                    raise ClientRequestError(f"the client did not answer {question['method']}")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(woken.wait(), interval)
                interval = min(interval * 1.5, 0.5)

    def _add_question(
        self, db: Session, task_id: str, key: str, question: JsonObject
    ) -> tuple[str, TaskView]:
        row = db.get(McpTask, task_id, with_for_update=True)
        if row is None or row.status in TERMINAL:
            raise ClientRequestError("the task ended before the client could be asked")
        name = _unique_key(list(row.used_keys or []), key)
        row.used_keys = [*(row.used_keys or []), name]
        row.input_requests = {**(row.input_requests or {}), name: question}
        row.status = "input_required"
        row.updated_at = self.clock()
        announce(db, self.key(task_id))
        return name, _view(row)

    @staticmethod
    def _take_answer(db: Session, task_id: str, name: str) -> JsonObject | None:
        row = db.get(McpTask, task_id, with_for_update=True)
        if row is None:
            raise ClientRequestError("the task no longer exists")
        responses = dict(row.input_responses or {})
        if name not in responses:
            return None
        answer = responses.pop(name)
        row.input_responses = responses
        return dict(answer)

    async def purge_expired(self) -> int:
        """Delete tasks past their TTL; how many."""
        now = self.clock()
        return await self.db.run(
            lambda db: int(
                getattr(db.execute(delete(McpTask).where(McpTask.expires_at < now)), "rowcount", 0)
            )
        )

    async def fail_unfinished(self, task_ids: list[str], message: str) -> None:
        """Mark tasks this worker can no longer finish (shutdown) as failed."""
        if not task_ids:
            return
        error = {"code": -32603, "message": message}

        def work(db: Session) -> None:
            db.execute(
                update(McpTask)
                .where(McpTask.id.in_(task_ids), McpTask.status.not_in(TERMINAL))
                .values(status="failed", error=error, status_message=message)
            )

        await self.db.run(work)
