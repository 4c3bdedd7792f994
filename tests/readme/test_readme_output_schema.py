"""The README's account of ``outputSchema`` matches what the registry publishes."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from resourceserver.mcp import Registry

README = Path(__file__).resolve().parents[2] / "README.md"


class Forecast(BaseModel):
    city: str


@dataclasses.dataclass
class Point:
    x: int


def published(registry: Registry, name: str) -> dict[str, Any]:
    tool: Any = registry.tools[name]
    return dict(tool.to_json())


def test_readme_does_not_promise_an_output_schema_for_every_return_type() -> None:
    text = README.read_text(encoding="utf-8")
    assert "the return type the `outputSchema`" not in text
    assert "has no `outputSchema`" in text
    assert '`{"result": …}`' in text


def test_text_returns_have_no_output_schema_and_objects_do() -> None:
    registry = Registry()

    @registry.tool(description="Text.")
    async def text() -> str:
        return "x"

    @registry.tool(description="Nothing.")
    async def nothing() -> None:
        return None

    @registry.tool(description="A model.")
    async def model() -> Forecast:
        return Forecast(city="Paris")

    @registry.tool(description="A dataclass.")
    async def point() -> Point:
        return Point(x=1)

    @registry.tool(description="A number.")
    async def number() -> int:
        return 1

    @registry.tool(description="A list.")
    async def words() -> list[str]:
        return ["a"]

    assert "outputSchema" not in published(registry, "text")
    assert "outputSchema" not in published(registry, "nothing")
    assert published(registry, "model")["outputSchema"]["properties"].keys() == {"city"}
    assert published(registry, "point")["outputSchema"]["properties"].keys() == {"x"}
    for name in ("number", "words"):
        schema = published(registry, name)["outputSchema"]
        assert schema["type"] == "object"
        assert schema["required"] == ["result"]
