"""The tools, resources and prompts the MCP conformance suite expects: 0.1.16's active suite
(the handshake era) here, plus the 2026-07-28 fixtures of 0.2.0-alpha merged in from
:mod:`tests.conformance.tools_2026`.

A test fixture, not part of any deployment: load it with
``load_tool_modules(["tests.conformance.tools"])``.
"""

from __future__ import annotations

import asyncio
import json
import struct
import zlib
from typing import Annotated, Any

from pydantic import Field
from typing_extensions import TypedDict

from resourceserver.mcp import (
    Audio,
    Context,
    EmbeddedResource,
    Image,
    PromptMessage,
    Registry,
    ResourceContents,
    Text,
    ToolError,
)
from tests.conformance import tools_2026

registry = Registry(name="charter-conformance")


def red_pixel_png() -> bytes:
    """A 1x1 red PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def silent_wav(samples: int = 8) -> bytes:
    """A tiny 8 kHz mono 8-bit WAV."""
    data = b"\x80" * samples
    fmt = struct.pack("<HHIIHH", 1, 1, 8000, 8000, 1, 8)
    return (
        b"RIFF"
        + struct.pack("<I", 4 + 8 + len(fmt) + 8 + len(data))
        + b"WAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"data"
        + struct.pack("<I", len(data))
        + data
    )


# -- tools -----------------------------------------------------------------------------------


@registry.tool()
def test_simple_text() -> str:
    """Returns a simple text response."""
    return "This is a simple text response for testing."


@registry.tool()
def test_image_content() -> Image:
    """Returns a 1x1 PNG image."""
    return Image(red_pixel_png(), "image/png")


@registry.tool()
def test_audio_content() -> Audio:
    """Returns a short WAV clip."""
    return Audio(silent_wav(), "audio/wav")


@registry.tool()
def test_embedded_resource() -> EmbeddedResource:
    """Returns an embedded text resource."""
    return EmbeddedResource(
        ResourceContents(
            uri="test://embedded-resource",
            mime_type="text/plain",
            text="This is an embedded resource content.",
        )
    )


@registry.tool()
def test_multiple_content_types() -> list[Text | Image | EmbeddedResource]:
    """Returns text, an image and an embedded resource."""
    return [
        Text("Multiple content types test:"),
        Image(red_pixel_png(), "image/png"),
        EmbeddedResource(
            ResourceContents(
                uri="test://mixed-content-resource",
                mime_type="application/json",
                text=json.dumps({"test": "data", "value": 123}),
            )
        ),
    ]


@registry.tool()
async def test_tool_with_logging(ctx: Context) -> str:
    """Sends three log messages while it runs."""
    await ctx.log("info", "Tool execution started")
    await asyncio.sleep(0.05)
    await ctx.log("info", "Tool processing data")
    await asyncio.sleep(0.05)
    await ctx.log("info", "Tool execution completed")
    return "Logging test completed"


@registry.tool()
def test_error_handling() -> str:
    """Always fails with an error result."""
    raise ToolError("This tool intentionally returns an error for testing")


@registry.tool()
async def test_tool_with_progress(ctx: Context) -> str:
    """Reports progress 0, 50 and 100 of 100."""
    for step in (0, 50, 100):
        await ctx.report_progress(step, 100, f"step {step}")
        if step < 100:
            await asyncio.sleep(0.05)
    return "Progress test completed"


@registry.tool()
async def test_sampling(
    ctx: Context, prompt: Annotated[str, Field(description="The prompt to send to the LLM")]
) -> str:
    """Asks the client's LLM to answer a prompt (sampling/createMessage)."""
    result = await ctx.sample(prompt, max_tokens=100)
    content = result.get("content")
    text = content.get("text", "") if isinstance(content, dict) else json.dumps(content)
    return f"LLM response: {text}"


@registry.tool()
async def test_elicitation(
    ctx: Context, message: Annotated[str, Field(description="The message to show the user")]
) -> str:
    """Asks the user for a username and an email (elicitation/create)."""
    result = await ctx.elicit(
        message,
        {
            "type": "object",
            "properties": {
                "username": {"type": "string", "description": "User's response"},
                "email": {"type": "string", "description": "User's email address"},
            },
            "required": ["username", "email"],
        },
    )
    return (
        f"User response: action={result.get('action')}, content={json.dumps(result.get('content'))}"
    )


@registry.tool()
async def test_elicitation_sep1034_defaults(ctx: Context) -> str:
    """Elicits fields that carry default values of every primitive type (SEP-1034)."""
    result = await ctx.elicit(
        "Please review the defaults",
        {
            "type": "object",
            "properties": {
                "name": {"type": "string", "description": "User name", "default": "John Doe"},
                "age": {"type": "integer", "description": "User age", "default": 30},
                "score": {"type": "number", "description": "User score", "default": 95.5},
                "status": {
                    "type": "string",
                    "description": "User status",
                    "enum": ["active", "inactive", "pending"],
                    "default": "active",
                },
                "verified": {"type": "boolean", "description": "Verified", "default": True},
            },
            "required": [],
        },
    )
    return _elicited(result)


@registry.tool()
async def test_elicitation_sep1330_enums(ctx: Context) -> str:
    """Elicits the five enum schema variants (SEP-1330)."""
    choices = [("value1", "First Option"), ("value2", "Second Option"), ("value3", "Third Option")]
    result = await ctx.elicit(
        "Please choose",
        {
            "type": "object",
            "properties": {
                "untitledSingle": {"type": "string", "enum": ["option1", "option2", "option3"]},
                "titledSingle": {
                    "type": "string",
                    "oneOf": [{"const": value, "title": title} for value, title in choices],
                },
                "legacyEnum": {
                    "type": "string",
                    "enum": ["opt1", "opt2", "opt3"],
                    "enumNames": ["Option One", "Option Two", "Option Three"],
                },
                "untitledMulti": {
                    "type": "array",
                    "items": {"type": "string", "enum": ["option1", "option2", "option3"]},
                },
                "titledMulti": {
                    "type": "array",
                    "items": {
                        "anyOf": [
                            {"const": "value1", "title": "First Choice"},
                            {"const": "value2", "title": "Second Choice"},
                            {"const": "value3", "title": "Third Choice"},
                        ]
                    },
                },
            },
            "required": [],
        },
    )
    return _elicited(result)


def _elicited(result: dict[str, Any]) -> str:
    content = json.dumps(result.get("content"))
    return f"Elicitation completed: action={result.get('action')}, content={content}"


@registry.tool()
async def test_reconnection(ctx: Context) -> str:
    """Closes its SSE stream mid-call; the client resumes with Last-Event-ID (SEP-1699)."""
    await ctx.close_stream()
    await asyncio.sleep(0.3)
    return "Reconnection test completed"


class Address(TypedDict, total=False):
    street: str
    city: str


@registry.tool(
    # The suite's JSON_SCHEMA_2020_12_FIXTURE (json-schema-2020-12 scenario, SEP-1613/2106).
    input_schema={
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "$defs": {
            "address": {
                "$anchor": "addressDef",
                "type": "object",
                "properties": {"street": {"type": "string"}, "city": {"type": "string"}},
            }
        },
        "properties": {
            "name": {"type": "string"},
            "address": {"$ref": "#/$defs/address"},
            "contactMethod": {"type": "string", "enum": ["phone", "email"]},
            "phone": {"type": "string"},
            "email": {"type": "string"},
        },
        "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
        "if": {
            "properties": {"contactMethod": {"const": "phone"}},
            "required": ["contactMethod"],
        },
        "then": {"required": ["phone"]},
        "else": {"required": ["email"]},
        "additionalProperties": False,
    }
)
def json_schema_2020_12_tool(
    name: str | None = None,
    address: Address | None = None,
    contactMethod: str | None = None,
    phone: str | None = None,
    email: str | None = None,
) -> str:
    """Tool with JSON Schema 2020-12 features."""
    return f"name={name!r}, address={address!r}, contact={contactMethod or phone or email!r}"


# -- resources -------------------------------------------------------------------------------


@registry.resource("test://static-text", name="static-text", mime_type="text/plain")
def static_text() -> str:
    """A static text resource."""
    return "This is the content of the static text resource."


@registry.resource("test://static-binary", name="static-binary", mime_type="image/png")
def static_binary() -> bytes:
    """A static binary resource (a PNG image)."""
    return red_pixel_png()


@registry.resource("test://template/{id}/data", name="template-data", mime_type="application/json")
def template_data(id: str) -> str:
    """Data for one id."""
    return json.dumps({"id": id, "templateTest": True, "data": f"Data for ID: {id}"})


@registry.resource("test://watched-resource", name="watched-resource", mime_type="text/plain")
def watched_resource() -> str:
    """A resource clients may subscribe to."""
    return "Watched resource content"


# -- prompts ---------------------------------------------------------------------------------


@registry.prompt()
def test_simple_prompt() -> str:
    """A simple prompt without arguments."""
    return "This is a simple prompt for testing."


@registry.prompt()
def test_prompt_with_arguments(
    arg1: Annotated[str, Field(description="First test argument")],
    arg2: Annotated[str, Field(description="Second test argument")],
) -> str:
    """A prompt with two required arguments."""
    return f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"


@registry.prompt()
def test_prompt_with_embedded_resource(
    resourceUri: Annotated[str, Field(description="URI of the resource to embed")],
) -> list[PromptMessage]:
    """A prompt embedding a resource."""
    resource = ResourceContents(
        uri=resourceUri, mime_type="text/plain", text="Embedded resource content for testing."
    )
    return [
        PromptMessage(EmbeddedResource(resource)),
        PromptMessage(Text("Please process the embedded resource above.")),
    ]


@registry.prompt()
def test_prompt_with_image() -> list[PromptMessage]:
    """A prompt containing an image."""
    return [
        PromptMessage(Image(red_pixel_png(), "image/png")),
        PromptMessage(Text("Please analyze the image above.")),
    ]


@registry.completion(prompt="test_prompt_with_arguments")
def complete_prompt_arguments(argument: str, value: str, context: dict[str, str]) -> list[str]:
    """Suggestions for ``arg1``/``arg2``."""
    words = ["paris", "park", "party", "test", "testing", "tested"]
    return [word for word in words if word.startswith(value)]


registry.merge(tools_2026.registry)
