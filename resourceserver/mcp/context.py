"""What a running tool can do besides returning: progress, logging, and requests to the client.

MCP 2025-11-25: "Progress", "Logging", "Elicitation", "Sampling", "Roots", and the
Streamable HTTP transport's SSE polling (SEP-1699) for :meth:`Context.close_stream`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from pydantic import BaseModel

from resourceserver.principal import Principal

JsonObject = dict[str, Any]

#: RFC 5424 severities as MCP names them, least severe first.
LOG_LEVELS: tuple[str, ...] = (
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
)
LogLevel = Literal["debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"]


class ToolError(Exception):
    """Raise from a tool to answer ``isError: true`` with this message.

    Say what the caller should change.
    """


class ClientRequestError(ToolError):
    """A request to the client failed, was refused, or the client cannot serve it."""


class Channel(Protocol):
    """How a handler reaches the client (implemented by the transport)."""

    async def notify(self, method: str, params: JsonObject) -> None:
        """Send a notification related to the current request."""
        ...

    async def request(self, method: str, params: JsonObject) -> JsonObject:
        """Send a request to the client and wait for its ``result`` (raises ClientRequestError)."""
        ...

    async def close_stream(self) -> None:
        """End the current SSE stream; the client reconnects and resumes (SEP-1699)."""
        ...


@dataclass(slots=True)
class Context:
    """Handed to a tool, prompt or resource function that declares a parameter of this type."""

    principal: Principal
    session_id: str
    channel: Channel
    request_id: str | int | None = None
    progress_token: str | int | None = None
    protocol_version: str = ""
    client_capabilities: JsonObject = field(default_factory=dict)
    log_level: str | None = None

    async def report_progress(
        self, progress: float, total: float | None = None, message: str | None = None
    ) -> None:
        """Send ``notifications/progress`` when the caller asked for it (else do nothing)."""
        if self.progress_token is None:
            return
        params: JsonObject = {"progressToken": self.progress_token, "progress": progress}
        if total is not None:
            params["total"] = total
        if message is not None:
            params["message"] = message
        await self.channel.notify("notifications/progress", params)

    async def log(self, level: LogLevel, data: Any, logger: str | None = None) -> None:
        """Send ``notifications/message`` if ``level`` reaches the client's chosen level."""
        threshold = LOG_LEVELS.index(self.log_level) if self.log_level in LOG_LEVELS else 0
        if LOG_LEVELS.index(level) < threshold:
            return
        params: JsonObject = {"level": level, "data": data}
        if logger:
            params["logger"] = logger
        await self.channel.notify("notifications/message", params)

    def _require(self, capability: str, what: str) -> None:
        if capability not in self.client_capabilities:
            raise ClientRequestError(
                f"the client did not declare the '{capability}' capability, so it cannot {what}"
            )

    async def elicit(self, message: str, schema: JsonObject | type[BaseModel]) -> JsonObject:
        """Ask the user for input; returns ``{"action": ..., "content": {...}}``."""
        self._require("elicitation", "ask the user for input")
        if isinstance(schema, type):
            requested = schema.model_json_schema()
            requested.pop("title", None)
        else:
            requested = schema
        return await self.channel.request(
            "elicitation/create", {"message": message, "requestedSchema": requested}
        )

    async def sample(
        self,
        messages: str | list[JsonObject],
        *,
        max_tokens: int = 256,
        system_prompt: str | None = None,
        temperature: float | None = None,
        model_preferences: JsonObject | None = None,
    ) -> JsonObject:
        """Ask the client's model for a completion; returns the ``CreateMessageResult``."""
        self._require("sampling", "sample its language model")
        if isinstance(messages, str):
            messages = [{"role": "user", "content": {"type": "text", "text": messages}}]
        params: JsonObject = {"messages": messages, "maxTokens": max_tokens}
        if system_prompt is not None:
            params["systemPrompt"] = system_prompt
        if temperature is not None:
            params["temperature"] = temperature
        if model_preferences is not None:
            params["modelPreferences"] = model_preferences
        return await self.channel.request("sampling/createMessage", params)

    async def list_roots(self) -> list[JsonObject]:
        """The client's roots (``roots/list``)."""
        self._require("roots", "list its roots")
        result = await self.channel.request("roots/list", {})
        roots = result.get("roots", [])
        return [root for root in roots if isinstance(root, dict)] if isinstance(roots, list) else []

    async def close_stream(self) -> None:
        """Close the SSE stream now; the client resumes with ``Last-Event-ID`` (SEP-1699)."""
        await self.channel.close_stream()
