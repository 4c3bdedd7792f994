"""A tool returning a ``TypedDict`` publishes it as its ``outputSchema`` (Python 3.11 needs
``typing_extensions.TypedDict`` for pydantic)."""

from __future__ import annotations

from typing_extensions import TypedDict

from resourceserver.mcp import Registry


class WordCount(TypedDict):
    words: int
    characters: int


def test_typeddict_return_is_the_output_schema() -> None:
    registry = Registry()

    @registry.tool
    def count(text: str) -> WordCount:
        """Count the words and characters of a text."""
        return {"words": len(text.split()), "characters": len(text)}

    listed = [tool.to_json() for tool in registry.tools.values()]
    schema = listed[0]["outputSchema"]
    assert schema["type"] == "object"
    assert set(schema["properties"]) == {"words", "characters"}
    assert "result" not in schema["properties"]
