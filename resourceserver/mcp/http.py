"""HTTP-level checks and error responses of the MCP endpoint.

MCP 2025-11-25 "Transports" §Streamable HTTP.
"""

from __future__ import annotations

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from resourceserver.mcp.jsonrpc import INVALID_REQUEST, JsonRpcError, error_message

#: Header names (HTTP header names are case-insensitive; these are the spec's spellings).
SESSION_HEADER = "Mcp-Session-Id"
VERSION_HEADER = "MCP-Protocol-Version"
LAST_EVENT_HEADER = "Last-Event-ID"


#: Verdicts of :func:`accepts` on ``Accept`` values seen (a client repeats its own on every
#: request); bounded, as the values are the client's.
_ACCEPT_VERDICTS: dict[tuple[str, str], bool] = {}
_ACCEPT_VERDICTS_KEPT = 256


def accepts(request: Request, media_type: str) -> bool:
    """True when the ``Accept`` header allows ``media_type`` (or anything)."""
    header = request.headers.get("accept", "")
    key = (header, media_type)
    verdict = _ACCEPT_VERDICTS.get(key)
    if verdict is None:
        kinds = {part.split(";")[0].strip().lower() for part in header.split(",")}
        major = media_type.split("/")[0]
        verdict = bool(kinds & {media_type, f"{major}/*", "*/*"})
        if len(_ACCEPT_VERDICTS) >= _ACCEPT_VERDICTS_KEPT:
            _ACCEPT_VERDICTS.clear()
        _ACCEPT_VERDICTS[key] = verdict
    return verdict


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
    """The request body, or None as soon as it exceeds ``limit`` bytes.

    Read from the ASGI ``receive`` channel itself rather than through
    :meth:`starlette.requests.Request.stream`: an async generator per request costs the event
    loop's bookkeeping of live generators (a weak set entry), several microseconds of a hot
    path of about a hundred. A client that leaves first raises
    :class:`starlette.requests.ClientDisconnect`, as ``stream()`` does.
    """
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    receive = request.receive
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise ClientDisconnect
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)
