"""``subscriptions/listen``: the long-lived notification stream of a 2026-07-28 client.

MCP 2026-07-28 "Subscriptions" (SEP-2575): the request names what to hear (tools, prompts
or resources list changes, updates of given resource URIs, and with the tasks extension the
status of given tasks); the response is an SSE stream that starts with
``notifications/subscriptions/acknowledged`` (the honoured subset), carries each matching
change tagged with ``io.modelcontextprotocol/subscriptionId`` (the request's id), and ends
with a result when the server closes it gracefully (shutdown).

SECURITY-CASES S73: the stream delivers only what its token may see (resource updates aimed at
one user go to that user only; task statuses only for the principal's own tasks, checked when
subscribing), and the token is checked again every ``revalidate_seconds``: a revoked or expired
token ends the stream with ``notifications/cancelled`` within the revocation bound. The checks
and the keep-alives of all of a worker's listeners are driven by one shared
:class:`~resourceserver.mcp.listen_watch.ListenWatch` (one check per distinct token per
interval); an idle stream wakes only for a change, a failed token, a due keep-alive or shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.responses import Response

from resourceserver.mcp.broadcast import Broadcasts, Change, Inbox
from resourceserver.mcp.envelope import SUBSCRIPTION_ID_KEY
from resourceserver.mcp.errors import INVALID_PARAMS, JsonRpcError
from resourceserver.mcp.jsonrpc import RequestId
from resourceserver.mcp.listen_watch import ListenWatch, Revalidate, Watched
from resourceserver.mcp.live import SSE_HEADERS, sse
from resourceserver.mcp.registry import Registry
from resourceserver.mcp.sse_response import EventStreamResponse
from resourceserver.mcp.task_store import TaskNotFoundError, TaskStore
from resourceserver.mcp.wake import Links
from resourceserver.principal import Principal

JsonObject = dict[str, Any]

LIST_FLAGS = {
    "toolsListChanged": "tools",
    "promptsListChanged": "prompts",
    "resourcesListChanged": "resources",
}
#: Most resource URIs or task ids one stream may name.
MAX_ITEMS = 100
MAX_URI_LENGTH = 2048


@dataclass(slots=True)
class Interests:
    """What one stream listens to (the honoured subset once acknowledged)."""

    lists: set[str] = field(default_factory=set)
    resources: list[str] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)
    asked_tasks: bool = False

    def to_json(self) -> JsonObject:
        out: JsonObject = {flag: True for flag, kind in LIST_FLAGS.items() if kind in self.lists}
        if self.resources:
            out["resourceSubscriptions"] = list(self.resources)
        if self.asked_tasks:
            out["taskIds"] = list(self.tasks)
        return out


def _invalid(message: str) -> JsonRpcError:
    return JsonRpcError(INVALID_PARAMS, f"Invalid params: {message}")


def _strings(value: Any, name: str, limit: int) -> list[str]:
    if not isinstance(value, list) or len(value) > MAX_ITEMS:
        raise _invalid(f"'{name}' must be a list of at most {MAX_ITEMS} strings")
    if not all(isinstance(item, str) and 0 < len(item) <= limit for item in value):
        raise _invalid(f"'{name}' must hold non-empty strings of at most {limit} characters")
    return list(dict.fromkeys(value))


def parse_interests(params: JsonObject) -> Interests:
    """The request's ``notifications`` filter (raises ``-32602``)."""
    wanted = params.get("notifications")
    if not isinstance(wanted, dict):
        raise _invalid("'notifications' must be an object naming what to listen to")
    interests = Interests()
    for flag, kind in LIST_FLAGS.items():
        value = wanted.get(flag, False)
        if not isinstance(value, bool):
            raise _invalid(f"'{flag}' must be a boolean")
        if value:
            interests.lists.add(kind)
    if "resourceSubscriptions" in wanted:
        interests.resources = _strings(
            wanted["resourceSubscriptions"], "resourceSubscriptions", MAX_URI_LENGTH
        )
    if "taskIds" in wanted:
        interests.tasks = _strings(wanted["taskIds"], "taskIds", 64)
        interests.asked_tasks = True
    return interests


class ListenStream:
    """One ``subscriptions/listen`` request and its stream."""

    def __init__(
        self,
        *,
        request_id: RequestId,
        principal: Principal,
        broadcasts: Broadcasts,
        tasks: TaskStore,
        revalidate: Revalidate | None,
        stopping: asyncio.Event,
        watch: ListenWatch,
    ) -> None:
        self.request_id = request_id
        self.principal = principal
        self.broadcasts = broadcasts
        self.tasks = tasks
        self.revalidate = revalidate
        self.stopping = stopping
        self.watch = watch
        self.interests = Interests()

    async def honour(self, wanted: Interests, registry: Registry) -> None:
        """Keep what this server can deliver to this principal: known resources, own tasks."""
        resources = []
        for uri in wanted.resources:
            with contextlib.suppress(JsonRpcError):
                registry.find_resource(uri)
                resources.append(uri)
        tasks = []
        for task_id in wanted.tasks:
            with contextlib.suppress(TaskNotFoundError):
                await self.tasks.get(task_id, self.principal)
                tasks.append(task_id)
        self.interests = Interests(set(wanted.lists), resources, tasks, wanted.asked_tasks)

    def response(self) -> Response:
        return EventStreamResponse(self._events(), headers=SSE_HEADERS)

    def _tagged(self, method: str, params: JsonObject | None = None) -> JsonObject:
        body = dict(params or {})
        body["_meta"] = {SUBSCRIPTION_ID_KEY: self.request_id}
        return {"jsonrpc": "2.0", "method": method, "params": body}

    async def _events(self) -> AsyncIterator[bytes]:
        # Joined and linked by plain calls: a context manager each costs memory per stream.
        inbox = await self.broadcasts.join()
        links = Links(inbox.wake, self.stopping)
        links.__enter__()
        watched = self.watch.add(inbox.wake, self.principal, self.revalidate)
        try:
            acknowledged = {"notifications": self.interests.to_json()}
            yield sse(self._tagged("notifications/subscriptions/acknowledged", acknowledged))
            watched.sent()
            while True:
                change = await self._next(inbox, watched)
                if self.stopping.is_set():
                    yield sse(self._closing())
                    return
                if watched.ended is not None:
                    yield sse(self._cancelled(watched.ended))
                    return
                if change is not None:
                    message = await self._message(change)
                    if message is not None:
                        yield sse(message)
                        watched.sent()
                elif watched.due:
                    yield b": keepalive\n\n"
                    watched.sent()
        finally:
            self.watch.remove(watched)
            links.__exit__()
            self.broadcasts.leave(inbox)

    def _next_ready(self, watched: Watched) -> bool:
        return self.stopping.is_set() or watched.ended is not None or watched.due

    async def _next(self, inbox: Inbox, watched: Watched) -> Change | None:
        """The next change, or None when woken for something else (token, keep-alive)."""
        inbox.wake.clear()
        change = inbox.take()
        if change is None and not self._next_ready(watched):
            await inbox.wake.wait()
            change = inbox.take()
        return change

    def _closing(self) -> JsonObject:
        """The graceful end: the response to the listen request."""
        result = {"resultType": "complete", "_meta": {SUBSCRIPTION_ID_KEY: self.request_id}}
        return {"jsonrpc": "2.0", "id": self.request_id, "result": result}

    def _cancelled(self, reason: str) -> JsonObject:
        """``notifications/cancelled``: the token is no longer good (S73)."""
        return self._tagged(
            "notifications/cancelled", {"requestId": self.request_id, "reason": reason}
        )

    async def _message(self, change: Change) -> JsonObject | None:
        """The notification ``change`` becomes on this stream, or None when not for it."""
        if change.kind in self.interests.lists:
            return self._tagged(f"notifications/{change.kind}/list_changed")
        mine = change.subject in (None, self.principal.subject) and change.client_id in (
            None,
            self.principal.client_id,
        )
        if change.kind == "resource" and mine and change.key in self.interests.resources:
            return self._tagged("notifications/resources/updated", {"uri": change.key})
        if change.kind == "task" and mine and change.key in self.interests.tasks:
            try:
                view = await self.tasks.get(change.key, self.principal)
            except TaskNotFoundError:
                return None
            return self._tagged("notifications/tasks", view.to_json(detailed=True))
        return None
