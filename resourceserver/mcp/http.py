"""HTTP-level checks and error responses of the MCP endpoint.

MCP 2025-11-25 "Transports" §Streamable HTTP.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from resourceserver.mcp.jsonrpc import INVALID_REQUEST, JsonRpcError, error_message

#: Header names (HTTP header names are case-insensitive; these are the spec's spellings).
SESSION_HEADER = "Mcp-Session-Id"
VERSION_HEADER = "MCP-Protocol-Version"
LAST_EVENT_HEADER = "Last-Event-ID"


def accepts(request: Request, media_type: str) -> bool:
    """True when the ``Accept`` header allows ``media_type`` (or anything)."""
    header = request.headers.get("accept", "")
    kinds = {part.split(";")[0].strip().lower() for part in header.split(",")}
    major = media_type.split("/")[0]
    return bool(kinds & {media_type, f"{major}/*", "*/*"})


def rpc_error(
    status: int, code: int, message: str, headers: dict[str, str] | None = None
) -> Response:
    """An HTTP error carrying a JSON-RPC error body with a null id."""
    return JSONResponse(
        error_message(None, JsonRpcError(code, message)), status_code=status, headers=headers
    )


def bad_request(message: str) -> Response:
    """400 with a JSON-RPC ``Invalid Request`` body."""
    return rpc_error(400, INVALID_REQUEST, f"Bad Request: {message}")


def session_not_found() -> Response:
    """404: unknown, expired, ended, or someone else's session (the client re-initializes)."""
    return rpc_error(404, INVALID_REQUEST, "Session not found")


def sse_headers(session_id: str) -> dict[str, str]:
    """Headers of an SSE response."""
    return {
        "Cache-Control": "no-cache, no-transform",
        "X-Accel-Buffering": "no",
        SESSION_HEADER: session_id,
    }


async def read_body(request: Request, limit: int) -> bytes | None:
    """The request body, or None as soon as it exceeds ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
