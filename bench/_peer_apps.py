"""The peer MCP servers of the hot-path table, each serving an ``echo(text)`` tool.

Run with the interpreter of the peer's own virtual environment (``bench/.peers/NAME``); this
file imports nothing from Charter or from ``bench``::

    bench/.peers/mcp/bin/python bench/_peer_apps.py sdk PORT

Kinds:

- ``sdk``: the official MCP Python SDK 2.x, ``mcp.server.mcpserver.MCPServer``, stateless
  Streamable HTTP answering with JSON (``stateless_http=True, json_response=True``), no auth.
- ``fastmcp``: FastMCP 4 (PyPI ``fastmcp``), ``http_app(stateless_http=True,
  json_response=True)``, no auth.
- ``http-mcp``: PyPI ``http-mcp`` mounted on Starlette, no auth.
- ``ceiling``: a bare Starlette route that parses the JSON-RPC ``tools/call`` and answers the
  echo result; no MCP library, no validation: the most a Python ASGI server can do here.

Every app answers ``GET /ready`` (outside the MCP path) so the harness knows it listens.
All of them are served by one uvicorn worker (uvloop + httptools when installed) on 127.0.0.1.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def ready_route() -> Any:
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def ready(_request: Any) -> Any:
        return PlainTextResponse("ok")

    return Route("/ready", ready)


def sdk_app() -> Any:
    from mcp.server.mcpserver import MCPServer

    server = MCPServer("bench-sdk")

    @server.tool()
    def echo(text: str) -> str:
        """Return the text unchanged."""
        return text

    app = server.streamable_http_app(stateless_http=True, json_response=True)
    app.router.routes.append(ready_route())
    return app


def fastmcp_app() -> Any:
    from fastmcp import FastMCP

    server = FastMCP("bench-fastmcp")

    @server.tool
    def echo(text: str) -> str:
        """Return the text unchanged."""
        return text

    app = server.http_app(path="/mcp", stateless_http=True, json_response=True)
    app.router.routes.append(ready_route())
    return app


def http_mcp_app() -> Any:
    from http_mcp.server import MCPServer
    from http_mcp.types import Arguments, Tool
    from pydantic import BaseModel
    from starlette.applications import Starlette

    class EchoInput(BaseModel):
        text: str

    class EchoOutput(BaseModel):
        text: str

    def echo(args: Arguments[EchoInput]) -> EchoOutput:
        return EchoOutput(text=args.inputs.text)

    tool = Tool(func=echo, inputs=EchoInput, output=EchoOutput)
    server = MCPServer(name="bench-http-mcp", version="1.0.0", tools=(tool,))
    app = Starlette(routes=[ready_route()])
    app.mount("/mcp", server.app)
    return app


def ceiling_app() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    async def mcp(request: Request) -> Response:
        message = json.loads(await request.body())
        text = message["params"]["arguments"]["text"]
        result = {"content": [{"type": "text", "text": text}], "isError": False}
        return JSONResponse({"jsonrpc": "2.0", "id": message["id"], "result": result})

    return Starlette(routes=[Route("/mcp", mcp, methods=["POST"]), ready_route()])


APPS = {"sdk": sdk_app, "fastmcp": fastmcp_app, "http-mcp": http_mcp_app, "ceiling": ceiling_app}


def main(argv: list[str]) -> None:
    import uvicorn

    kind, port = argv[0], int(argv[1])
    if kind not in APPS:
        raise SystemExit(f"unknown peer {kind!r}; one of {', '.join(APPS)}")
    uvicorn.run(APPS[kind](), host="127.0.0.1", port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main(sys.argv[1:])
