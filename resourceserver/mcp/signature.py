"""From a typed Python function to MCP tool schemas.

MCP 2025-11-25 "Tools" §Tool and §Structured Content.

Parameters become ``inputSchema`` (a pydantic model validates the arguments), the return
annotation becomes ``outputSchema`` when it describes structured data. A parameter annotated
with the context class is injected, never part of the schema.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, get_args, get_origin, get_type_hints

import typing_extensions
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError, create_model

from resourceserver.mcp.content import CONTENT_TYPES, PromptMessage, ToolResult
from resourceserver.mcp.errors import DefinitionError

__all__ = ["DefinitionError", "FunctionShape", "describe_validation_error", "inspect_function"]

JsonObject = dict[str, Any]


def _is_context(annotation: Any, context_type: type) -> bool:
    if annotation is context_type:
        return True
    if get_origin(annotation) in (typing.Union, types.UnionType):
        return any(arg is context_type for arg in get_args(annotation))
    return False


def _unwrap(annotation: Any) -> Any:
    return get_args(annotation)[0] if get_origin(annotation) is typing.Annotated else annotation


def _is_unstructured(annotation: Any) -> bool:
    """Return types rendered as content blocks rather than ``structuredContent``."""
    annotation = _unwrap(annotation)
    if annotation in (
        None,
        type(None),
        str,
        inspect.Signature.empty,
        Any,
        ToolResult,
        PromptMessage,
    ):
        return True
    if isinstance(annotation, type) and issubclass(annotation, CONTENT_TYPES):
        return True
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return all(_is_unstructured(arg) for arg in args)
    if origin in (list, tuple, typing.Sequence) and args:
        return all(_is_content(arg) for arg in args if arg is not Ellipsis)
    return False


def _is_content(annotation: Any) -> bool:
    """Content block classes (or unions of them): a ``list[Image | Text]`` is content,
    a ``list[str]`` is structured data."""
    annotation = _unwrap(annotation)
    if get_origin(annotation) in (typing.Union, types.UnionType):
        return all(_is_content(arg) for arg in get_args(annotation))
    return isinstance(annotation, type) and issubclass(annotation, (*CONTENT_TYPES, PromptMessage))


def _schema_of_object(annotation: Any) -> bool:
    """True when the JSON schema of ``annotation`` is an object (model, TypedDict, dataclass)."""
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return True
    if typing_extensions.is_typeddict(annotation):
        return True
    return isinstance(annotation, type) and hasattr(annotation, "__dataclass_fields__")


def _clean(schema: JsonObject) -> JsonObject:
    schema.pop("title", None)
    return schema


@dataclass(frozen=True, slots=True)
class FunctionShape:
    """What the registry needs to know about a tool function."""

    arguments: type[BaseModel]
    input_schema: JsonObject
    context_parameter: str | None
    output: TypeAdapter[Any] | None
    output_schema: JsonObject | None
    wraps_result: bool
    is_async: bool

    def validate_arguments(self, arguments: JsonObject) -> dict[str, Any]:
        """Validated keyword arguments (raises ``pydantic.ValidationError``)."""
        model = self.arguments.model_validate(arguments)
        # The model forbids extra fields, so its instance dictionary holds exactly the
        # declared fields, by name (reading ``model_fields`` per call goes through pydantic's
        # deprecation wrapper: a microsecond per tool call).
        return dict(model.__dict__)

    def structure(self, value: Any) -> JsonObject:
        """Validate a return value against ``outputSchema`` and turn it into JSON."""
        assert self.output is not None  # noqa: S101 - only called for structured tools
        checked = self.output.validate_python(value, from_attributes=True)
        dumped = self.output.dump_python(checked, mode="json")
        return {"result": dumped} if self.wraps_result else dumped


def inspect_function(fn: Callable[..., Any], context_type: type, *, name: str) -> FunctionShape:
    """Read parameters and return annotation of ``fn`` (raises :class:`DefinitionError`)."""
    try:
        hints = get_type_hints(fn, include_extras=True)
    except Exception as exc:
        raise DefinitionError(f"{name}: cannot resolve type annotations: {exc}") from exc
    fields: dict[str, Any] = {}
    context_parameter: str | None = None
    for param in inspect.signature(fn).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD, param.POSITIONAL_ONLY):
            raise DefinitionError(f"{name}: parameter {param.name!r} must be a plain keyword")
        annotation = hints.get(param.name, Any)
        if _is_context(annotation, context_type):
            context_parameter = param.name
            continue
        if param.name not in hints:
            raise DefinitionError(f"{name}: parameter {param.name!r} needs a type annotation")
        default = ... if param.default is param.empty else param.default
        fields[param.name] = (annotation, default)
    arguments = create_model(f"{name}_arguments", __config__=ConfigDict(extra="forbid"), **fields)
    input_schema = _clean(arguments.model_json_schema())
    input_schema.setdefault("properties", {})
    returns = hints.get("return", inspect.Signature.empty)
    output: TypeAdapter[Any] | None = None
    output_schema: JsonObject | None = None
    wraps = False
    if not _is_unstructured(returns):
        output = TypeAdapter(returns)
        if _schema_of_object(returns):
            output_schema = _clean(output.json_schema())
        else:
            wraps = True
            output_schema = {
                "type": "object",
                "properties": {"result": _clean(output.json_schema())},
                "required": ["result"],
            }
    return FunctionShape(
        arguments=arguments,
        input_schema=input_schema,
        context_parameter=context_parameter,
        output=output,
        output_schema=output_schema,
        wraps_result=wraps,
        is_async=inspect.iscoroutinefunction(fn),
    )


def describe_validation_error(error: ValidationError, *, noun: str = "argument") -> str:
    """One line per problem, naming the argument, what is wrong and what was sent."""
    lines = []
    for problem in error.errors(include_url=False):
        location = ".".join(str(part) for part in problem["loc"]) or "(arguments)"
        text = f"{noun} '{location}': {problem['msg']}"
        if problem["type"] not in ("missing", "extra_forbidden"):
            text += f", got {problem['input']!r}"
        lines.append(text)
    return "\n".join(lines)
