"""JSON-RPC 2.0 messages as MCP uses them.

JSON-RPC 2.0 §4-§5; MCP 2025-11-25 "Base Protocol" §Messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: JSON-RPC 2.0 §5.1 error codes.
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
#: MCP: a resource that does not exist (MCP "Resources" §Error Handling).
RESOURCE_NOT_FOUND = -32002

RequestId = str | int
JsonObject = dict[str, Any]


class JsonRpcError(Exception):
    """A protocol-level failure answered with a JSON-RPC ``error`` object."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_json(self) -> JsonObject:
        """The ``error`` member."""
        error: JsonObject = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
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
