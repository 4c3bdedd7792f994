"""OAuth 2.0 Protected Resource Metadata (RFC 9728 §2, §3) for the MCP endpoint.

The document is served at the path-inserted URL (RFC 9728 §3.1: ``/.well-known/
oauth-protected-resource`` followed by the resource's path, here ``…/mcp``), which is the one the
401 challenge names, and at the root well-known URL for clients that only try that one. Both
answer the same document; it is public, so any origin may read it (CORS ``*``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from resourceserver.settings import ResourceServerSettings

WELL_KNOWN_PATH = "/.well-known/oauth-protected-resource"

_CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, OPTIONS",
    "Access-Control-Allow-Headers": "MCP-Protocol-Version",
    "Access-Control-Max-Age": "86400",
}


def protected_resource_metadata(settings: ResourceServerSettings) -> dict[str, Any]:
    """The RFC 9728 §2 document; ``resource`` and ``authorization_servers`` exactly as set."""
    return {
        "resource": settings.resource_url,
        "authorization_servers": [settings.issuer],
        "scopes_supported": list(settings.scopes_supported),
        "bearer_methods_supported": ["header"],
        "resource_name": settings.resource_name,
    }


def metadata_routes(settings: ResourceServerSettings) -> list[BaseRoute]:
    """Routes serving the document at the path-inserted and the root well-known URLs."""
    document = protected_resource_metadata(settings)

    async def endpoint(request: Request) -> Response:
        if request.method == "OPTIONS":
            return Response(status_code=204, headers=_CORS_HEADERS)
        return JSONResponse(document, headers={**_CORS_HEADERS, "Cache-Control": "max-age=300"})

    paths = dict.fromkeys((urlsplit(settings.resource_metadata_url).path, WELL_KNOWN_PATH))
    return [Route(path, endpoint, methods=["GET", "OPTIONS"]) for path in paths]
