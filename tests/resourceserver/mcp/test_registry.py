"""The tool API: schemas from signatures, validation messages, results, module loading."""

from __future__ import annotations

import sys
import types
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, Field
from typing_extensions import TypedDict

from resourceserver.mcp import (
    Context,
    DefinitionError,
    EmbeddedResource,
    Image,
    Registry,
    ToolError,
    ToolModuleError,
    load_tool_modules,
)
from resourceserver.principal import Principal

PRINCIPAL = Principal("alice", "c1", frozenset({"mcp"}), "jti-1", 2_000_000_000)


class NullChannel:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    async def notify(self, method: str, params: dict[str, Any]) -> None:
        self.sent.append((method, params))

    async def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        # A valid ElicitResult (elicit checks the answer's shape) that names the method asked.
        return {"action": "accept", "content": {"echo": method}}

    async def close_stream(self) -> None:
        return None


def ctx(**kwargs: Any) -> Context:
    return Context(principal=PRINCIPAL, session_id="s", channel=NullChannel(), **kwargs)


class Sum(BaseModel):
    total: int
    note: str = ""


class Pair(TypedDict):
    left: int
    right: int


def make_registry() -> Registry:
    registry = Registry()

    @registry.tool(scopes={"math"}, annotations={"readOnlyHint": True})
    def add(
        a: Annotated[int, Field(description="first term")],
        b: Annotated[int, Field(description="second term", ge=0)] = 1,
    ) -> Sum:
        """Add two integers."""
        return Sum(total=a + b)

    @registry.tool()
    async def halve(n: int) -> float:
        """Half of n."""
        return n / 2

    @registry.tool()
    def pair(n: int) -> Pair:
        """A pair."""
        return {"left": n, "right": "not a number"}  # type: ignore[typeddict-item]

    @registry.tool()
    def broken() -> str:
        """Raises."""
        raise ToolError("the moon is not full; try again tomorrow")

    @registry.tool()
    def crash() -> str:
        """Crashes."""
        return str(1 / 0)

    @registry.tool()
    def picture() -> Image:
        """An image."""
        return Image(b"\x89PNG", "image/png")

    @registry.tool()
    async def who(context: Context, greeting: str = "hi") -> str:
        """Greets the caller."""
        return f"{greeting} {context.principal.subject}"

    return registry


def test_input_schema_comes_from_parameters() -> None:
    tool = make_registry().tools["add"].to_json()
    schema = tool["inputSchema"]
    assert tool["description"] == "Add two integers."
    assert schema["type"] == "object"
    assert schema["required"] == ["a"]
    assert schema["properties"]["a"]["description"] == "first term"
    assert schema["properties"]["b"]["minimum"] == 0
    assert tool["annotations"] == {"readOnlyHint": True}


def test_context_parameter_is_not_in_schema() -> None:
    schema = make_registry().tools["who"].to_json()["inputSchema"]
    assert set(schema["properties"]) == {"greeting"}


def test_output_schema_from_model_and_wrapped_primitive() -> None:
    registry = make_registry()
    assert (
        registry.tools["add"].to_json()["outputSchema"]["properties"]["total"]["type"] == "integer"
    )
    halve = registry.tools["halve"].to_json()["outputSchema"]
    assert halve["required"] == ["result"]
    assert "outputSchema" not in registry.tools["picture"].to_json()


async def test_structured_result_has_text_mirror() -> None:
    result = await make_registry().tools["add"].call({"a": 2, "b": 3}, ctx())
    assert result["isError"] is False
    assert result["structuredContent"] == {"total": 5, "note": ""}
    assert result["content"][0]["text"] == '{"total":5,"note":""}'
    halved = await make_registry().tools["halve"].call({"n": 3}, ctx())
    assert halved["structuredContent"] == {"result": 1.5}


async def test_invalid_input_names_argument_and_value() -> None:
    result = await make_registry().tools["add"].call({"a": "abc"}, ctx())
    assert result["isError"] is True
    text = result["content"][0]["text"]
    assert "argument 'a': Input should be a valid integer" in text
    assert "got 'abc'" in text


async def test_missing_and_unknown_arguments_are_explained() -> None:
    result = await make_registry().tools["add"].call({"b": 1, "c": 2}, ctx())
    text = result["content"][0]["text"]
    assert "argument 'a': Field required" in text
    assert "argument 'c': Extra inputs are not permitted" in text


async def test_constraint_violation_is_explained() -> None:
    result = await make_registry().tools["add"].call({"a": 1, "b": -1}, ctx())
    assert (
        "argument 'b': Input should be greater than or equal to 0, got -1"
        in (result["content"][0]["text"])
    )


async def test_output_not_matching_schema_is_an_error_result() -> None:
    result = await make_registry().tools["pair"].call({"n": 1}, ctx())
    assert result["isError"] is True
    assert "does not match its outputSchema" in result["content"][0]["text"]
    assert "field 'right'" in result["content"][0]["text"]


async def test_tool_error_and_crash_become_error_results() -> None:
    registry = make_registry()
    broken = await registry.tools["broken"].call({}, ctx())
    assert broken == {
        "content": [{"type": "text", "text": "the moon is not full; try again tomorrow"}],
        "isError": True,
    }
    crash = await registry.tools["crash"].call({}, ctx())
    assert crash["isError"] is True
    assert "ZeroDivisionError" in crash["content"][0]["text"]
    assert "division by zero" not in crash["content"][0]["text"]  # internals stay in the log


async def test_context_is_injected_and_content_blocks_pass_through() -> None:
    registry = make_registry()
    who = await registry.tools["who"].call({}, ctx())
    assert who["content"] == [{"type": "text", "text": "hi alice"}]
    picture = await registry.tools["picture"].call({}, ctx())
    assert picture["content"][0] == {"type": "image", "data": "iVBORw==", "mimeType": "image/png"}


async def test_progress_is_silent_without_token_and_logging_respects_level() -> None:
    channel = NullChannel()
    context = Context(principal=PRINCIPAL, session_id="s", channel=channel, log_level="warning")
    await context.report_progress(1, 2)
    await context.log("info", "quiet")
    await context.log("error", "loud")
    assert channel.sent == [("notifications/message", {"level": "error", "data": "loud"})]


async def test_elicit_needs_client_capability() -> None:
    with pytest.raises(ToolError, match="elicitation"):
        await ctx().elicit("name?", {"type": "object", "properties": {}})
    answer = await ctx(client_capabilities={"elicitation": {}}).elicit("name?", {"type": "object"})
    assert answer == {"action": "accept", "content": {"echo": "elicitation/create"}}
    assert answer.accepted and answer.content == {"echo": "elicitation/create"}


def test_definition_errors() -> None:
    registry = Registry()
    with pytest.raises(DefinitionError, match="needs a description"):

        @registry.tool()
        def nodoc(a: int) -> int:
            return a

    with pytest.raises(DefinitionError, match="needs a type annotation"):

        @registry.tool()
        def untyped(a) -> int:  # type: ignore[no-untyped-def]
            """Untyped."""
            return 1

    @registry.tool()
    def once() -> str:
        """Once."""
        return ""

    with pytest.raises(DefinitionError, match="already registered"):
        registry.tool(name="once")(once)


def test_resource_template_matching() -> None:
    registry = Registry()

    @registry.resource("test://items/{id}/data", mime_type="application/json")
    def item(id: str) -> str:
        """An item."""
        return id

    found, variables = registry.find_resource("test://items/42/data")
    assert variables == {"id": "42"}
    assert found.to_json()["uriTemplate"] == "test://items/{id}/data"


def test_load_tool_modules(monkeypatch: pytest.MonkeyPatch) -> None:
    with_registry = types.ModuleType("charter_test_tools_a")
    with_registry.registry = make_registry()  # type: ignore[attr-defined]
    with_register = types.ModuleType("charter_test_tools_b")

    def register(registry: Registry) -> None:
        @registry.tool()
        def extra() -> str:
            """Extra."""
            return "x"

    with_register.register = register  # type: ignore[attr-defined]
    empty = types.ModuleType("charter_test_tools_c")
    for module in (with_registry, with_register, empty):
        monkeypatch.setitem(sys.modules, module.__name__, module)
    merged = load_tool_modules(["charter_test_tools_a", "charter_test_tools_b"])
    assert {"add", "extra"} <= set(merged.tools)
    with pytest.raises(ToolModuleError, match="must define `registry"):
        load_tool_modules(["charter_test_tools_c"])
    with pytest.raises(ToolModuleError, match="cannot import tool module 'no_such_mod_xyz'"):
        load_tool_modules(["no_such_mod_xyz"])
    with pytest.raises(DefinitionError, match="duplicate tools"):
        load_tool_modules(["charter_test_tools_a", "charter_test_tools_a"])


async def test_bare_decorators() -> None:
    registry = Registry()

    @registry.tool
    def echo(text: str) -> str:
        """Echo."""
        return text

    @registry.prompt
    def greet(name: str) -> str:
        """Greet."""
        return f"hello {name}"

    assert echo("x") == "x"
    assert (await registry.tools["echo"].call({"text": "hi"}, ctx()))["content"][0]["text"] == "hi"
    rendered = await registry.prompts["greet"].render({"name": "bo"}, ctx())
    assert rendered["messages"] == [
        {"role": "user", "content": {"type": "text", "text": "hello bo"}}
    ]


def test_package_docstring_example_runs() -> None:
    import textwrap

    import resourceserver.mcp as package

    assert package.__doc__ is not None
    source = package.__doc__.split("::\n\n", 1)[1].split("\n\nParameters become")[0]
    namespace: dict[str, Any] = {}
    exec(textwrap.dedent(source), namespace)  # noqa: S102 - our own documentation
    tool = namespace["registry"].tools["forecast"].to_json()
    assert tool["inputSchema"]["required"] == ["city"]
    assert tool["_meta"] == {"scopes": ["weather:read"]}


async def test_list_of_strings_is_structured_but_list_of_blocks_is_content() -> None:
    registry = Registry()

    @registry.tool
    def words() -> list[str]:
        """Words."""
        return ["a", "b"]

    @registry.tool
    def blocks() -> list[Image | EmbeddedResource]:
        """Blocks."""
        return [Image(b"x", "image/png")]

    assert registry.tools["words"].to_json()["outputSchema"]["properties"]["result"] == {
        "items": {"type": "string"},
        "type": "array",
    }
    assert (await registry.tools["words"].call({}, ctx()))["structuredContent"] == {
        "result": ["a", "b"]
    }
    assert "outputSchema" not in registry.tools["blocks"].to_json()
    assert (await registry.tools["blocks"].call({}, ctx()))["content"][0]["type"] == "image"
