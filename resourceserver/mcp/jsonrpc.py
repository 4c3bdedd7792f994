"""JSON-RPC 2.0 messages as MCP uses them.

JSON-RPC 2.0 §4-§5; MCP 2025-11-25 and 2026-07-28 "Base Protocol" / "Overview" §Messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from resourceserver.mcp.errors import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    RESOURCE_NOT_FOUND,
    JsonRpcError,
)
from resourceserver.records import record

__all__ = [
    "INTERNAL_ERROR",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "METHOD_NOT_FOUND",
    "PARSE_ERROR",
    "RESOURCE_NOT_FOUND",
    "JsonObject",
    "JsonRpcError",
    "Message",
    "Notification",
    "Request",
    "RequestId",
    "Response",
    "error_message",
    "notification_message",
    "parse_message",
    "request_message",
    "result_message",
]

RequestId = str | int
JsonObject = dict[str, Any]


@record
class Request:
    """A request: expects exactly one response with the same id."""

    id: RequestId
    method: str
    params: JsonObject = field(default_factory=dict)

    @property
    def progress_token(self) -> str | int | None:
        """``params._meta.progressToken`` when the sender asked for progress."""
        meta = self.params.get("_meta")
        token = meta.get("progressToken") if isinstance(meta, dict) else None
        return token if isinstance(token, str | int) and not isinstance(token, bool) else None


@record
class Notification:
    """A one-way message."""

    method: str
    params: JsonObject = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Response:
    """A response (``result`` or ``error``) to a request this side sent."""

    id: RequestId
    body: JsonObject


Message = Request | Notification | Response


def _valid_id(value: Any) -> bool:
    return isinstance(value, str | int) and not isinstance(value, bool)


def parse_message(obj: Any) -> Message:
    """Classify one decoded JSON value, or raise ``JsonRpcError(INVALID_REQUEST)``."""
    if not isinstance(obj, dict) or obj.get("jsonrpc") != "2.0":
        raise JsonRpcError(INVALID_REQUEST, "Invalid Request: expected a JSON-RPC 2.0 object")
    if "method" in obj:
        method = obj["method"]
        params = obj.get("params", {})
        if not isinstance(method, str) or not method:
            raise JsonRpcError(INVALID_REQUEST, "Invalid Request: 'method' must be a string")
        if params is None:
            params = {}
        if not isinstance(params, dict):
            raise JsonRpcError(INVALID_REQUEST, "Invalid Request: 'params' must be an object")
        if "id" not in obj:
            return Notification(method, params)
        if not _valid_id(obj["id"]):
            raise JsonRpcError(INVALID_REQUEST, "Invalid Request: 'id' must be a string or integer")
        return Request(obj["id"], method, params)
    if _valid_id(obj.get("id")) and (("result" in obj) != ("error" in obj)):
        return Response(obj["id"], obj)
    raise JsonRpcError(
        INVALID_REQUEST, "Invalid Request: neither a request, notification nor response"
    )


def result_message(request_id: RequestId, result: JsonObject) -> JsonObject:
    """A success response."""
    return {"jsonrpc": "2.0", "id": request_id, "result": result}


def error_message(request_id: RequestId | None, error: JsonRpcError) -> JsonObject:
    """An error response (``id`` is null when the request could not be read)."""
    return {"jsonrpc": "2.0", "id": request_id, "error": error.to_json()}


def notification_message(method: str, params: JsonObject | None = None) -> JsonObject:
    """A notification."""
    message: JsonObject = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        message["params"] = params
    return message


def request_message(request_id: RequestId, method: str, params: JsonObject) -> JsonObject:
    """A request."""
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
