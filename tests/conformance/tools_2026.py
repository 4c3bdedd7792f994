"""The tools and prompts the MCP conformance suite 0.2.0-alpha expects for protocol 2026-07-28
(``server --requirements 2026-07-28``): multi round-trip requests (SEP-2322), stateless
diagnostics (SEP-2575), custom headers (SEP-2243) and the tasks extension (SEP-2663).

A test fixture, merged into ``tests.conformance.tools`` (``charter serve --tools
tests.conformance.tools``). The names and behaviours are the ones the suite's scenarios
describe (``src/scenarios/server/…`` of the conformance repository).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from pydantic import Field

from resourceserver.mcp import Context, JsonRpcError, Registry, ToolError
from resourceserver.mcp.errors import INTERNAL_ERROR

registry = Registry(name="charter-conformance-2026")

NAME_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"name": {"type": "string"}},
    "required": ["name"],
}


def _name(answer: Any) -> str:
    content = answer.content or {}
    return str(content.get("name", "")) if answer.accepted else "(declined)"


# -- SEP-2322: multi round-trip requests ------------------------------------------------------


@registry.tool()
async def test_input_required_result_elicitation(ctx: Context) -> str:
    """Asks the user's name (key user_name), then greets them."""
    answer = await ctx.elicit("What is your name?", NAME_SCHEMA, key="user_name")
    return f"Hello, {_name(answer)}!"


@registry.tool()
async def test_input_required_result_sampling(ctx: Context) -> str:
    """Asks the client's model a question (key capital_question)."""
    answer = await ctx.sample(
        "What is the capital of France?", max_tokens=100, key="capital_question"
    )
    return f"The model said: {answer.text}"


@registry.tool()
async def test_input_required_result_list_roots(ctx: Context) -> str:
    """Lists the client's roots (key client_roots)."""
    roots = await ctx.list_roots(key="client_roots")
    return "Roots: " + ", ".join(root.uri for root in roots)


@registry.tool()
async def test_input_required_result_request_state(ctx: Context) -> str:
    """Asks for a confirmation carried through the sealed requestState."""
    answer = await ctx.elicit(
        "Please confirm",
        {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]},
        key="confirm",
    )
    return f"state-ok: confirmed={bool((answer.content or {}).get('ok'))}"


@registry.tool()
async def test_input_required_result_multiple_inputs(ctx: Context) -> str:
    """Asks three things at once: a name, a greeting from the model and the roots."""
    name, greeting, roots = await asyncio.gather(
        ctx.elicit("What is your name?", NAME_SCHEMA, key="user_name"),
        ctx.sample("Generate a greeting", max_tokens=50, key="greeting"),
        ctx.list_roots(key="client_roots"),
    )
    return f"{greeting.text} {_name(name)} ({len(roots)} roots)"


@registry.tool()
async def test_input_required_result_multi_round(ctx: Context) -> str:
    """Asks a name, then (a second round) a favourite colour."""
    name = await ctx.elicit("Step 1: What is your name?", NAME_SCHEMA, key="step1")
    color = await ctx.elicit(
        "Step 2: What is your favorite color?",
        {"type": "object", "properties": {"color": {"type": "string"}}, "required": ["color"]},
        key="step2",
    )
    return f"{_name(name)} likes {(color.content or {}).get('color')}"


@registry.tool()
async def test_input_required_result_tampered_state(ctx: Context) -> str:
    """Asks for a confirmation; a tampered requestState is refused before it runs again."""
    answer = await ctx.elicit(
        "Please confirm",
        {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]},
    )
    return f"confirmed: {answer.action}"


@registry.tool()
async def test_input_required_result_capabilities(ctx: Context) -> str:
    """Asks only what the request's declared capabilities allow."""
    questions = []
    if ctx.supports("elicitation"):
        questions.append(ctx.elicit("What is your name?", NAME_SCHEMA, key="user_name"))
    if ctx.supports("sampling"):
        questions.append(ctx.sample("Say hello", max_tokens=20, key="greeting"))
    if ctx.supports("roots"):
        questions.append(ctx.list_roots(key="client_roots"))
    answers = await asyncio.gather(*questions)
    return f"got {len(answers)} answers"


@registry.prompt()
async def test_input_required_result_prompt(ctx: Context) -> str:
    """A prompt that asks the user for its context first."""
    answer = await ctx.elicit(
        "What context should the prompt use?",
        {"type": "object", "properties": {"context": {"type": "string"}}, "required": ["context"]},
        key="user_context",
    )
    return f"Use this context: {(answer.content or {}).get('context')}"


# -- SEP-2575: stateless diagnostics ------------------------------------------------------------


@registry.tool()
async def test_missing_capability(ctx: Context) -> str:
    """Needs sampling; a request that does not declare it gets -32021."""
    answer = await ctx.sample("Say hello", max_tokens=10)
    return answer.text


@registry.tool()
async def test_streaming_elicitation(ctx: Context) -> str:
    """Asks the user something: the question comes back as an InputRequiredResult."""
    answer = await ctx.elicit("Anything to add?", NAME_SCHEMA)
    return f"thanks, {_name(answer)}"


@registry.tool()
async def test_logging_tool(ctx: Context) -> str:
    """Logs at info level (delivered only when the request sets a log level)."""
    await ctx.log("info", "test_logging_tool ran")
    return "logged"


@registry.tool()
async def test_trigger_tool_change(ctx: Context) -> str:
    """Announces that the tool list changed."""
    await ctx.notify_list_changed("tools")
    return "tools changed"


@registry.tool()
async def test_trigger_prompt_change(ctx: Context) -> str:
    """Announces that the prompt list changed."""
    await ctx.notify_list_changed("prompts")
    return "prompts changed"


# -- SEP-2243: custom headers -------------------------------------------------------------------


@registry.tool()
def test_header_echo(
    region: Annotated[
        str,
        Field(
            description="Mirrored into Mcp-Param-Region",
            json_schema_extra={"x-mcp-header": "Region"},
        ),
    ],
) -> str:
    """Echoes the region argument (sent in the Mcp-Param-Region header too)."""
    return f"region={region}"


# -- SEP-2663: tasks ------------------------------------------------------------------------------


@registry.tool()
def greet(name: str) -> str:
    """Greets someone (never a task)."""
    return f"Hello, {name}!"


@registry.tool(task="optional")
async def slow_compute(
    ctx: Context, seconds: Annotated[float, Field(ge=0, le=120)], label: str = ""
) -> str:
    """Sleeps for the given seconds (as a task when the client can poll one)."""
    await ctx.continue_as_task(f"computing {label}".strip())
    await asyncio.sleep(seconds)
    return f"computed {label} in {seconds}s"


@registry.tool(task="required")
async def failing_job(ctx: Context) -> str:
    """Runs as a task and ends with a tool error after about a second."""
    await ctx.continue_as_task()
    await asyncio.sleep(1.0)
    raise ToolError("the job failed on purpose")


@registry.tool(task="optional")
async def protocol_error_job(ctx: Context) -> str:
    """Runs as a task and crashes into a protocol error."""
    await ctx.continue_as_task()
    await asyncio.sleep(0.2)
    raise JsonRpcError(INTERNAL_ERROR, "the job crashed")


@registry.tool(task="optional")
async def confirm_delete(ctx: Context, filename: str) -> str:
    """Runs as a task that asks for a confirmation (answered with tasks/update)."""
    await ctx.continue_as_task()
    answer = await ctx.elicit(
        f"Delete {filename}?",
        {"type": "object", "properties": {"confirm": {"type": "boolean"}}, "required": ["confirm"]},
    )
    confirmed = answer.accepted and (answer.content or {}).get("confirm") is True
    return f"{filename} {'deleted' if confirmed else 'kept'}"


@registry.tool(task="optional")
async def multi_input(ctx: Context) -> str:
    """Runs as a task that asks two questions at once."""
    await ctx.continue_as_task()
    first, second = await asyncio.gather(
        ctx.elicit("First name?", NAME_SCHEMA), ctx.elicit("Second name?", NAME_SCHEMA)
    )
    return f"{_name(first)} and {_name(second)}"


@registry.tool(task="required")
async def test_tool_with_task(ctx: Context) -> str:
    """Asks a name inline (InputRequiredResult), then goes on as a task that greets."""
    answer = await ctx.elicit("What is your name?", NAME_SCHEMA, key="user_name")
    await ctx.continue_as_task("greeting")
    await asyncio.sleep(0.3)
    return f"Hello, {_name(answer)}!"
