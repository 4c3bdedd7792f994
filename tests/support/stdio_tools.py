"""Tools of the STDIO tests: one that prints and logs (both must end up on stderr, S86), one that
asks the user (elicitation relayed over stdio), one mirrored into an ``Mcp-Param-*`` header."""

from __future__ import annotations

import logging
from typing import Annotated

from pydantic import Field

from resourceserver.mcp import Context, Registry

registry = Registry(name="stdio-tests")
logger = logging.getLogger("tests.stdio_tools")


@registry.tool
def noisy(text: str) -> str:
    "Print and log the text, then return it."
    print(f"printed {text}")  # the test checks that this reaches stderr, not stdout
    logger.warning("logged %s", text)
    return text


@registry.tool
async def ask_name(ctx: Context) -> str:
    "Ask the user's name."
    answer = await ctx.elicit(
        "Your name?",
        {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]},
        key="name",
    )
    return f"Hello {answer.content['name']}" if answer.accepted and answer.content else "Hello?"


@registry.tool
def regional(region: Annotated[str, Field(json_schema_extra={"x-mcp-header": "Region"})]) -> str:
    "Answer from a region (the region is mirrored into a header by HTTP clients)."
    return f"served in {region}"
