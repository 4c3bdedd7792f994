"""S70: ``Mcp-Method``/``Mcp-Name`` headers that disagree with the body, or are missing →
``-32020`` (HTTP 400); ``Mcp-Param-*`` values (``x-mcp-header``) that disagree with the
arguments, are missing, or are malformed → refused alike; tool definitions breaking the
``x-mcp-header`` rules are refused at registration. (MCP 2026-07-28 "Streamable HTTP"
§Request Metadata, "Tools" §x-mcp-header.)"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, Field

from resourceserver.mcp import DefinitionError, Registry
from tests.support.mcp_harness import database
from tests.support.modern_mcp import ModernApp, ModernHttp, modern_app


def header(name: str) -> Any:
    return Field(json_schema_extra={"x-mcp-header": name})


def tools() -> Registry:
    registry = Registry()

    @registry.tool()
    def route(
        region: Annotated[str, header("Region")],
        shard: Annotated[
            int | None, Field(json_schema_extra={"x-mcp-header": "Shard", "type": "integer"})
        ] = None,
        dry_run: Annotated[bool, header("Dry-Run")] = False,
        note: str = "",
    ) -> str:
        """Routes by region."""
        return f"{region}/{shard}/{dry_run}"

    @registry.resource("test://café/menu")
    def menu() -> str:
        """A URI outside the plain header characters travels Base64-encoded."""
        return "ok"

    return registry


@pytest.fixture
def server(tmp_path: Path) -> ModernApp:
    return modern_app(tools(), database(tmp_path / "rs.db"))


@pytest.fixture
async def mcp(server: ModernApp) -> AsyncIterator[ModernHttp]:
    async with server.client() as client:
        yield ModernHttp(client, server.token())


def b64(text: str) -> str:
    return f"=?base64?{base64.b64encode(text.encode()).decode()}?="


def mismatch(response: Any) -> None:
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == -32020, response.text


CALL = {"name": "route", "arguments": {"region": "eu-west"}}


async def test_s70_method_header_missing_or_disagreeing_is_32020(mcp: ModernHttp) -> None:
    mismatch(await mcp.post("tools/list", headers={"Mcp-Method": None}))
    mismatch(await mcp.post("tools/list", headers={"Mcp-Method": "prompts/list"}))
    mismatch(await mcp.post("tools/list", headers={"Mcp-Method": "TOOLS/LIST"}))
    ok = await mcp.post("tools/list", headers={"mcp-method": "tools/list"})
    assert ok.status_code == 200


async def test_s70_name_header_missing_or_disagreeing_is_32020(mcp: ModernHttp) -> None:
    headers = {"Mcp-Param-Region": "eu-west"}
    mismatch(await mcp.post("tools/call", CALL, headers={**headers, "Mcp-Name": None}))
    mismatch(await mcp.post("tools/call", CALL, headers={**headers, "Mcp-Name": "other"}))
    ok = await mcp.post("tools/call", CALL, headers={**headers, "Mcp-Name": "  route  "})
    assert ok.status_code == 200, ok.text
    read = {"uri": "test://x"}
    mismatch(await mcp.post("resources/read", read, headers={"Mcp-Name": "test://y"}))
    task = {"taskId": "abc"}
    bare = ModernHttp(
        mcp.client, mcp.token, capabilities={"extensions": {"io.modelcontextprotocol/tasks": {}}}
    )
    mismatch(await bare.post("tasks/get", task, headers={"Mcp-Name": "other"}))


async def test_s70_name_header_may_use_the_base64_sentinel(mcp: ModernHttp) -> None:
    params = {"uri": "test://café/menu"}
    ok = await mcp.post("resources/read", params, headers={"Mcp-Name": b64("test://café/menu")})
    assert ok.status_code == 200, ok.text
    assert ok.json()["result"]["contents"][0]["text"] == "ok"
    wrong = b64("test://cafe/menu")
    mismatch(await mcp.post("resources/read", params, headers={"Mcp-Name": wrong}))


async def test_s70_param_headers_must_match_the_arguments(mcp: ModernHttp) -> None:
    def call(arguments: dict[str, Any], **headers: str) -> Any:
        return mcp.post("tools/call", {"name": "route", "arguments": arguments}, headers=headers)

    ok = await call(
        {"region": "eu-west", "shard": 42, "dry_run": True},
        **{"Mcp-Param-Region": "eu-west", "Mcp-Param-Shard": "42.0", "Mcp-Param-Dry-Run": "true"},
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["result"]["content"][0]["text"] == "eu-west/42/True"
    # Missing while the argument is there; disagreeing; malformed Base64; a header for an
    # absent argument; a wrong boolean spelling; a non-number for an integer.
    mismatch(await call({"region": "eu-west"}))
    mismatch(await call({"region": "eu-west"}, **{"Mcp-Param-Region": "us-east"}))
    mismatch(await call({"region": "Hello"}, **{"Mcp-Param-Region": "=?base64?SGVsbG8?="}))
    mismatch(await call({"region": "Hello"}, **{"Mcp-Param-Region": "=?base64?SGVs!!!bG8=?="}))
    mismatch(await call({"region": "eu"}, **{"Mcp-Param-Region": "eu", "Mcp-Param-Shard": "1"}))
    mismatch(
        await call(
            {"region": "eu", "dry_run": True},
            **{"Mcp-Param-Region": "eu", "Mcp-Param-Dry-Run": "True"},
        )
    )
    mismatch(
        await call(
            {"region": "eu", "shard": 1}, **{"Mcp-Param-Region": "eu", "Mcp-Param-Shard": "one"}
        )
    )
    # The sentinel decodes to the body value; without the sentinel a value is literal.
    encoded = await call({"region": "Hello, 世界"}, **{"Mcp-Param-Region": b64("Hello, 世界")})
    assert encoded.status_code == 200, encoded.text
    literal = base64.b64encode(b"Hello").decode()
    assert (await call({"region": literal}, **{"Mcp-Param-Region": literal})).status_code == 200


async def test_s70_tools_list_shows_the_annotations(mcp: ModernHttp) -> None:
    tools = (await mcp.result("tools/list"))["tools"]
    route = next(tool for tool in tools if tool["name"] == "route")
    assert route["inputSchema"]["properties"]["region"]["x-mcp-header"] == "Region"


def test_s70_invalid_x_mcp_header_definitions_are_refused() -> None:
    registry = Registry()

    class Nested(BaseModel):
        zone: Annotated[str, header("Zone")]

    cases: list[tuple[Any, str]] = [
        (Annotated[float, header("Ratio")], "type"),
        (
            Annotated[list[str], Field(json_schema_extra={"items": {"x-mcp-header": "X"}})],
            "reachable",
        ),
        (Annotated[str, header("Bad Name")], "token"),
        (Nested, "reachable"),
    ]
    for index, (annotation, message) in enumerate(cases):

        def tool(value: Any) -> str:
            """A tool."""
            return ""

        tool.__annotations__ = {"value": annotation, "return": str}
        with pytest.raises(DefinitionError, match=message):
            registry.tool(name=f"bad{index}")(tool)

    def duplicate(a: Annotated[str, header("Same")], b: Annotated[str, header("same")]) -> str:
        """Two parameters, one header name."""
        return ""

    with pytest.raises(DefinitionError, match="unique"):
        registry.tool()(duplicate)


def test_tool_input_schemas_are_object_schemas_in_a_known_dialect() -> None:
    registry = Registry()

    def tool() -> str:
        """A tool."""
        return ""

    with pytest.raises(DefinitionError, match="dialect"):
        registry.tool(
            name="old",
            input_schema={"$schema": "http://json-schema.org/draft-04/schema#", "type": "object"},
        )(tool)
    with pytest.raises(DefinitionError, match="object schema"):
        registry.tool(name="array", input_schema={"type": "array"})(tool)
    registry.tool(
        name="seven",
        input_schema={"$schema": "http://json-schema.org/draft-07/schema#", "type": "object"},
    )(tool)
    registry.tool(name="default", input_schema={"type": "object", "$defs": {}, "allOf": []})(tool)
    assert {"seven", "default"} <= set(registry.tools)
