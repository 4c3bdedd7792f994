"""What a running tool can do besides returning: progress, logging, questions to the client,
change notifications, and turning into a task.

MCP 2025-11-25 and 2026-07-28: "Progress", "Logging", "Elicitation", "Sampling", "Roots";
2026-07-28 "Multi Round-Trip Requests" and the tasks extension (SEP-2663); the Streamable HTTP
transport's SSE polling (SEP-1699) for :meth:`Context.close_stream`.

One API for both protocol eras; the :class:`Channel` the transport hands in decides how a
question travels. In a handshake-era session it is a request the server sends on the SSE
stream, answered by a later POST. In a 2026-07-28 request it is an ``InputRequiredResult``:
the call ends, the client answers and calls again, and the tool runs again from the start; this
time ``elicit``/``sample``/``list_roots`` return the answers at once (see the README, "What
changes for a tool that elicits or samples"). In a task, the question waits in the task until
the client answers it with ``tasks/update``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar, overload

from pydantic import BaseModel

from resourceserver.mcp.errors import ClientRequestError, MissingClientCapabilityError, ToolError
from resourceserver.mcp.interrupts import ProtocolFault
from resourceserver.mcp.results import ElicitResult, Root, SamplingResult, roots_of
from resourceserver.principal import Principal

__all__ = [
    "LOG_LEVELS",
    "Channel",
    "ClientRequestError",
    "Context",
    "ListKind",
    "LogLevel",
    "Notifier",
    "ToolError",
]

JsonObject = dict[str, Any]
ModelT = TypeVar("ModelT", bound=BaseModel)

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
ListKind = Literal["tools", "prompts", "resources"]


class Channel(Protocol):
    """How a handler reaches the client (implemented by the transport)."""

    async def notify(self, method: str, params: JsonObject) -> None:
        """Send a notification related to the current request."""
        ...

    async def request(self, method: str, params: JsonObject) -> JsonObject:
        """Ask the client and return its ``result`` (raises ClientRequestError).

        Channels that answer from a record of earlier answers set ``answers_by_key = True``
        and also take ``key=`` (the author's name for the question); the context passes it to
        them when one was given.
        """
        ...

    async def close_stream(self) -> None:
        """End the current SSE stream; the client reconnects and resumes (SEP-1699)."""
        ...


class Notifier(Protocol):
    """Change notifications for every client listening, on any worker."""

    async def resource_updated(self, uri: str, subject: str | None = None) -> object:
        """``notifications/resources/updated`` to subscribers of ``uri`` (or of one user)."""
        ...

    async def list_changed(self, kind: ListKind) -> None:
        """``notifications/<kind>/list_changed`` to every listener that asked for it."""
        ...


@dataclass(slots=True)
class Context:
    """Handed to a tool, prompt or resource function that declares a parameter of this type."""

    principal: Principal
    session_id: str | None
    channel: Channel
    request_id: str | int | None = None
    progress_token: str | int | None = None
    protocol_version: str = ""
    client_capabilities: JsonObject = field(default_factory=dict)
    log_level: str | None = None
    #: Handshake era: log at every level until the client sets one. 2026-07-28: only when the
    #: request names a level.
    logs_without_level: bool = True
    #: True for a 2026-07-28 request: a missing capability is a protocol error (``-32021``).
    modern: bool = False
    notifier: Notifier | None = None
    #: Set when the call may turn into a task (2026-07-28, tasks extension).
    task_starter: Callable[[str | None], Awaitable[None]] | None = None

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
        if self.log_level not in LOG_LEVELS and not self.logs_without_level:
            return
        threshold = LOG_LEVELS.index(self.log_level) if self.log_level in LOG_LEVELS else 0
        if LOG_LEVELS.index(level) < threshold:
            return
        params: JsonObject = {"level": level, "data": data}
        if logger:
            params["logger"] = logger
        await self.channel.notify("notifications/message", params)

    def supports(self, capability: str) -> bool:
        """True when the request declared ``capability`` (``elicitation``, ``sampling``…)."""
        return capability in self.client_capabilities

    def _require(self, capability: str, what: str) -> None:
        if self.supports(capability):
            return
        if self.modern:
            raise ProtocolFault(MissingClientCapabilityError({capability: {}}, capability))
        raise ClientRequestError(
            f"the client did not declare the '{capability}' capability, so it cannot {what}"
        )

    async def _ask(self, method: str, params: JsonObject, key: str | None) -> JsonObject:
        # Only channels that answer from recorded answers (2026-07-28) care about the key.
        if key is None or not getattr(self.channel, "answers_by_key", False):
            return await self.channel.request(method, params)
        return await self.channel.request(method, params, key=key)  # type: ignore[call-arg]

    @overload
    async def elicit(
        self, message: str, schema: type[ModelT], *, key: str | None = None
    ) -> ElicitResult[ModelT]: ...

    @overload
    async def elicit(
        self, message: str, schema: JsonObject, *, key: str | None = None
    ) -> ElicitResult[Any]: ...

    async def elicit(
        self, message: str, schema: JsonObject | type[BaseModel], *, key: str | None = None
    ) -> ElicitResult[Any]:
        """Ask the user for input shaped by ``schema`` (a JSON schema or a pydantic model).

        ``key`` names the question (letters, digits, ``_-.``); unnamed questions are numbered
        in the order they are asked.
        """
        self._require("elicitation", "ask the user for input")
        model: type[BaseModel] | None = None
        if isinstance(schema, type):
            model = schema
            requested = model.model_json_schema()
            requested.pop("title", None)
        else:
            requested = dict(schema)
        params = {"mode": "form", "message": message, "requestedSchema": requested}
        if not self.modern:
            params.pop("mode")
        return ElicitResult(await self._ask("elicitation/create", params, key), model)

    async def sample(
        self,
        messages: str | list[JsonObject],
        *,
        max_tokens: int = 256,
        system_prompt: str | None = None,
        temperature: float | None = None,
        model_preferences: JsonObject | None = None,
        key: str | None = None,
    ) -> SamplingResult:
        """Ask the client's model for a completion (deprecated in MCP 2026-07-28, still served)."""
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
        return SamplingResult(await self._ask("sampling/createMessage", params, key))

    async def list_roots(self, *, key: str | None = None) -> list[Root]:
        """The client's roots (``roots/list``; deprecated in MCP 2026-07-28, still served)."""
        self._require("roots", "list its roots")
        return roots_of(await self._ask("roots/list", {}, key))

    async def close_stream(self) -> None:
        """Close the SSE stream now; the client resumes with ``Last-Event-ID`` (SEP-1699)."""
        await self.channel.close_stream()

    async def continue_as_task(self, status_message: str | None = None) -> None:
        """Go on in the background as a task, when this call can be one; else do nothing.

        A tool registered with ``task=`` and called by a client that declared the tasks
        extension answers the call now with a task the client polls; everything after this
        line runs in that task. Questions asked before it travel as ``InputRequiredResult``
        (and the tool runs again); questions asked after it wait in the task.
        """
        if self.task_starter is not None:
            await self.task_starter(status_message)

    async def notify_resource_updated(self, uri: str, *, subject: str | None = None) -> None:
        """Tell subscribers of ``uri`` that it changed (only ``subject``'s, when given)."""
        if self.notifier is not None:
            await self.notifier.resource_updated(uri, subject)

    async def notify_list_changed(self, kind: ListKind) -> None:
        """Tell listening clients that the list of tools, prompts or resources changed."""
        if self.notifier is not None:
            await self.notifier.list_changed(kind)
