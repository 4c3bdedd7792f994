"""Request headers mirroring the body of a 2026-07-28 request, checked against it.

MCP 2026-07-28 "Streamable HTTP" §Request Metadata (SEP-2243): ``Mcp-Method`` on every
request, ``Mcp-Name`` on ``tools/call``/``prompts/get`` (``params.name``), ``resources/read``
(``params.uri``) and the tasks methods (``params.taskId``, SEP-2663), and one
``Mcp-Param-{Name}`` header per tool parameter whose schema carries ``x-mcp-header``. Values
may use the Base64 sentinel ``=?base64?…?=``. A missing, malformed or disagreeing header is
``-32020`` (HTTP 400); SECURITY-CASES S70. "Tools" §x-mcp-header lists the constraints a tool
definition must meet, checked when the tool is registered.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from resourceserver.mcp.errors import DefinitionError, HeaderMismatchError
from resourceserver.mcp.jsonrpc import Request

JsonObject = dict[str, Any]

METHOD_HEADER = "mcp-method"
NAME_HEADER = "mcp-name"
PARAM_HEADER_PREFIX = "mcp-param-"
#: Where ``Mcp-Name`` comes from, per method.
NAME_SOURCES = {
    "tools/call": "name",
    "prompts/get": "name",
    "resources/read": "uri",
    "tasks/get": "taskId",
    "tasks/update": "taskId",
    "tasks/cancel": "taskId",
}
#: RFC 9110 §5.6.2 ``token``.
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_SENTINEL = re.compile(r"^=\?base64\?(.*)\?=$", re.DOTALL)
_BASE64 = re.compile(r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$")
#: Visible ASCII, space and tab (RFC 9110 §5.5).
_PLAIN = re.compile(r"^[\t\x20-\x7e]*$")
_SAFE_INTEGER = 2**53 - 1


@dataclass(frozen=True, slots=True)
class ParamHeader:
    """A tool parameter mirrored into ``Mcp-Param-{name}``."""

    path: tuple[str, ...]
    name: str
    type: str

    @property
    def header(self) -> str:
        return PARAM_HEADER_PREFIX + self.name.lower()


def decode_value(raw: str) -> str:
    """A header value with the Base64 sentinel decoded (raises HeaderMismatchError)."""
    value = raw.strip(" \t")
    if not _PLAIN.match(value):
        raise HeaderMismatchError("a header value contains characters not allowed in HTTP")
    found = _SENTINEL.match(value)
    if found is None:
        return value
    encoded = found.group(1)
    if not _BASE64.match(encoded):
        raise HeaderMismatchError("a =?base64?…?= header value is not valid Base64")
    try:
        return base64.b64decode(encoded, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise HeaderMismatchError("a =?base64?…?= header value is not valid UTF-8") from exc


def _single(headers: Any, name: str) -> str | None:
    values = headers.getlist(name) if hasattr(headers, "getlist") else [headers.get(name)]
    values = [value for value in values if value is not None]
    if len(values) > 1:
        raise HeaderMismatchError(f"{name} is sent more than once")
    return values[0] if values else None


def check_standard_headers(headers: Any, request: Request) -> None:
    """``Mcp-Method`` and ``Mcp-Name`` present and equal to the body."""
    method = _single(headers, METHOD_HEADER)
    if method is None:
        raise HeaderMismatchError("the Mcp-Method header is required")
    if method.strip(" \t") != request.method:
        raise HeaderMismatchError("Mcp-Method header value does not match the body's method")
    source = NAME_SOURCES.get(request.method)
    body_name = request.params.get(source) if source else None
    if not isinstance(body_name, str):
        return
    name = _single(headers, NAME_HEADER)
    if name is None:
        raise HeaderMismatchError(f"the Mcp-Name header is required for {request.method}")
    if decode_value(name) != body_name:
        raise HeaderMismatchError(f"Mcp-Name header value does not match params.{source}")


def _value_at(arguments: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = arguments
    for part in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _matches(header: str, value: Any, kind: str) -> bool:
    if kind == "boolean":
        return isinstance(value, bool) and header == ("true" if value else "false")
    if kind == "integer":
        try:
            number = float(header)
        except ValueError:
            return False
        integral = isinstance(value, int) and not isinstance(value, bool)
        return integral and abs(value) <= _SAFE_INTEGER and number == value
    return isinstance(value, str) and header == value


def check_param_headers(
    headers: Any, params: tuple[ParamHeader, ...], arguments: Mapping[str, Any]
) -> None:
    """Each ``x-mcp-header`` parameter's header present exactly when its value is, and equal."""
    for param in params:
        value = _value_at(arguments, param.path)
        raw = _single(headers, param.header)
        label = f"Mcp-Param-{param.name}"
        if value is None:
            if raw is not None:
                raise HeaderMismatchError(f"{label} is sent but the argument is absent")
            continue
        if raw is None:
            raise HeaderMismatchError(f"{label} header is required for this argument")
        if not _matches(decode_value(raw), value, param.type):
            raise HeaderMismatchError(f"{label} header value does not match the argument")


def _annotation(schema: JsonObject, path: tuple[str, ...]) -> ParamHeader | None:
    name = schema.get("x-mcp-header")
    if name is None:
        return None
    where = ".".join(path)
    if not isinstance(name, str) or not _TOKEN.match(name):
        raise DefinitionError(f"x-mcp-header of {where!r} must be an HTTP token, got {name!r}")
    kind = schema.get("type")
    if kind not in ("string", "integer", "boolean"):
        raise DefinitionError(
            f"x-mcp-header of {where!r} needs type string, integer or boolean, got {kind!r}"
        )
    return ParamHeader(path, name, str(kind))


def _misplaced(node: Any, reachable: bool) -> bool:
    """True when ``x-mcp-header`` appears where it may not: anywhere but on a property reached
    from the root through ``properties`` only (``reachable`` nodes are on that chain; their own
    ``properties`` are walked by :func:`param_headers_of`)."""
    if isinstance(node, list):
        return any(_misplaced(item, False) for item in node)
    if not isinstance(node, dict):
        return False
    if "x-mcp-header" in node and not reachable:
        return True
    return any(
        _misplaced(value, False)
        for key, value in node.items()
        if key != "x-mcp-header" and not (reachable and key == "properties")
    )


def param_headers_of(schema: JsonObject) -> tuple[ParamHeader, ...]:
    """The ``x-mcp-header`` parameters of an input schema (raises DefinitionError)."""
    found: list[ParamHeader] = []
    if "x-mcp-header" in schema or _misplaced(schema, True):
        raise DefinitionError("x-mcp-header must only appear on properties reachable from the root")
    pending: list[tuple[JsonObject, tuple[str, ...]]] = [(schema, ())]
    while pending:
        node, path = pending.pop()
        properties = node.get("properties")
        if not isinstance(properties, dict):
            continue
        for key, child in properties.items():
            if not isinstance(child, dict):
                continue
            if _misplaced(child, True):
                raise DefinitionError(
                    f"x-mcp-header under {key!r} is not reachable through properties"
                )
            param = _annotation(child, (*path, key))
            if param is not None:
                found.append(param)
            pending.append((child, (*path, key)))
    names = [param.name.lower() for param in found]
    if len(set(names)) != len(names):
        raise DefinitionError("x-mcp-header names must be unique (case-insensitively)")
    return tuple(sorted(found, key=lambda param: param.path))
