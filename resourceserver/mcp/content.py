"""Content blocks tools and prompts return.

MCP 2025-11-25 "Tools" §Tool Result and "Prompts" §Data Types.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any, Literal

JsonObject = dict[str, Any]


def _b64(data: bytes | str) -> str:
    return data if isinstance(data, str) else base64.b64encode(data).decode("ascii")


@dataclass(frozen=True, slots=True)
class Text:
    """Plain text."""

    text: str

    def to_json(self) -> JsonObject:
        return {"type": "text", "text": self.text}


@dataclass(frozen=True, slots=True)
class Image:
    """An image; ``data`` is raw bytes (or already base64 text)."""

    data: bytes | str
    mime_type: str = "image/png"

    def to_json(self) -> JsonObject:
        return {"type": "image", "data": _b64(self.data), "mimeType": self.mime_type}


@dataclass(frozen=True, slots=True)
class Audio:
    """An audio clip; ``data`` is raw bytes (or already base64 text)."""

    data: bytes | str
    mime_type: str = "audio/wav"

    def to_json(self) -> JsonObject:
        return {"type": "audio", "data": _b64(self.data), "mimeType": self.mime_type}


@dataclass(frozen=True, slots=True)
class ResourceContents:
    """The contents of one resource: ``text`` or binary ``blob``."""

    uri: str
    mime_type: str = "text/plain"
    text: str | None = None
    blob: bytes | None = None

    def to_json(self) -> JsonObject:
        out: JsonObject = {"uri": self.uri, "mimeType": self.mime_type}
        if self.blob is not None:
            out["blob"] = _b64(self.blob)
        else:
            out["text"] = self.text or ""
        return out


@dataclass(frozen=True, slots=True)
class EmbeddedResource:
    """A resource embedded in a tool result or prompt message."""

    resource: ResourceContents

    def to_json(self) -> JsonObject:
        return {"type": "resource", "resource": self.resource.to_json()}


@dataclass(frozen=True, slots=True)
class ResourceLink:
    """A link to a resource the client may read."""

    uri: str
    name: str
    mime_type: str | None = None
    description: str | None = None

    def to_json(self) -> JsonObject:
        out: JsonObject = {"type": "resource_link", "uri": self.uri, "name": self.name}
        if self.mime_type:
            out["mimeType"] = self.mime_type
        if self.description:
            out["description"] = self.description
        return out


Content = Text | Image | Audio | EmbeddedResource | ResourceLink
CONTENT_TYPES = (Text, Image, Audio, EmbeddedResource, ResourceLink)


@dataclass(frozen=True, slots=True)
class ToolResult:
    """A complete tool result, for tools that need full control over it."""

    content: list[Content] = field(default_factory=list)
    structured: JsonObject | None = None
    is_error: bool = False

    def to_json(self) -> JsonObject:
        out: JsonObject = {
            "content": [block.to_json() for block in self.content],
            "isError": self.is_error,
        }
        if self.structured is not None:
            out["structuredContent"] = self.structured
        return out


@dataclass(frozen=True, slots=True)
class PromptMessage:
    """One message of a prompt."""

    content: Content
    role: Literal["user", "assistant"] = "user"

    def to_json(self) -> JsonObject:
        return {"role": self.role, "content": self.content.to_json()}


def error_result(text: str) -> JsonObject:
    """A tool result reporting a failure the caller can act on."""
    return {"content": [{"type": "text", "text": text}], "isError": True}


def to_content_list(value: Any) -> list[JsonObject] | None:
    """Turn a tool's unstructured return value into content blocks, or None if it is not one."""
    if value is None:
        return []
    if isinstance(value, str):
        return [Text(value).to_json()]
    if isinstance(value, CONTENT_TYPES):
        return [value.to_json()]
    if isinstance(value, list | tuple) and all(isinstance(v, (*CONTENT_TYPES, str)) for v in value):
        return [Text(v).to_json() if isinstance(v, str) else v.to_json() for v in value]
    return None


def json_text(value: Any) -> str:
    """Compact JSON text of a structured value (the text block mirroring structuredContent)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
