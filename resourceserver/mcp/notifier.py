"""Change notifications for clients of both eras (the :class:`~resourceserver.mcp.context.Notifier`
tools use through ``Context.notify_resource_updated`` and ``notify_list_changed``).

MCP 2025-11-25 "Resources" §Subscriptions (a handshake-era session subscribed with
``resources/subscribe`` gets ``notifications/resources/updated`` on its GET stream) and
2026-07-28 "Subscriptions" (a ``subscriptions/listen`` stream on any worker gets what it asked
for, through :class:`~resourceserver.mcp.broadcast.Broadcasts`). List changes go to modern
listeners only: the handshake era advertises ``listChanged: false``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from resourceserver.mcp.broadcast import Broadcasts
from resourceserver.mcp.context import ListKind
from resourceserver.mcp.jsonrpc import notification_message
from resourceserver.mcp.sessions import SessionStore

JsonObject = dict[str, Any]
Publish = Callable[[str, JsonObject], Awaitable[None]]
#: Sends one message to each of many sessions (batched: one transaction per chunk of them).
PublishEach = Callable[[Sequence[str], JsonObject], Awaitable[None]]


class ChangeNotifier:
    """Sends change notifications to handshake-era sessions and modern listeners."""

    def __init__(
        self,
        sessions: SessionStore,
        publish: Publish,
        broadcasts: Broadcasts,
        publish_each: PublishEach | None = None,
    ) -> None:
        self.sessions = sessions
        self.publish = publish
        self.publish_each = publish_each
        self.broadcasts = broadcasts

    async def resource_updated(self, uri: str, subject: str | None = None) -> int:
        """Notify subscribers of ``uri`` (only ``subject``'s, when given); how many sessions."""
        sessions = await self.sessions.subscribed_to(uri, subject=subject)
        message = notification_message("notifications/resources/updated", {"uri": uri})
        if self.publish_each is not None:
            await self.publish_each(sessions, message)
        else:
            for session_id in sessions:
                await self.publish(session_id, message)
        await self.broadcasts.publish("resource", uri, subject=subject)
        return len(sessions)

    async def list_changed(self, kind: ListKind) -> None:
        """Tell modern listeners that the ``kind`` list changed."""
        if kind not in ("tools", "prompts", "resources"):
            raise ValueError(f"unknown list {kind!r}")
        await self.broadcasts.publish(kind)
