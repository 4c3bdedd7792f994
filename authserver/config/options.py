"""Command-line options generated from the settings model (click), so that a setting is
declared once and is at the same time a ``CHARTER_*`` variable and a ``charter serve`` option.

A field's option is ``--field-name`` unless its :class:`Option` marker says otherwise; its type
follows the field's annotation (a flag pair for booleans, ranges from ``ge``/``le``, choices
from a ``Literal``, a repeatable option for lists). The options have no default and read no
environment variable: what is not given is left to the model (environment, then default),
so precedence stays option > ``CHARTER_*`` > default.
"""

from __future__ import annotations

import re
import types
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import annotated_types
import click
from pydantic import BaseModel, SecretStr, ValidationError
from pydantic.fields import FieldInfo

F = TypeVar("F", bound=Callable[..., Any])
ENV_PREFIX = "CHARTER_"


@dataclass(frozen=True)
class Option:
    """How a setting appears on the command line and in the README's table (``Annotated``)."""

    #: The option's name when not ``--field-name`` (e.g. ``--ssrf-allow-host`` for a list).
    flag: str | None = None
    metavar: str | None = None
    #: The default as the README and ``--help`` show it, when it is computed or needs words.
    shown_default: str | None = None
    #: False for settings never given on a command line (secrets: they would show in ``ps``).
    command_line: bool = True


def env_name(name: str) -> str:
    """``access_token_ttl`` → ``CHARTER_ACCESS_TOKEN_TTL``."""
    return ENV_PREFIX + name.upper()


def option_of(field: FieldInfo) -> Option:
    """The field's :class:`Option` marker, or the default one."""
    return next((item for item in field.metadata if isinstance(item, Option)), Option())


def flag_of(name: str, field: FieldInfo) -> str:
    """The option name of field ``name``."""
    return option_of(field).flag or "--" + name.replace("_", "-")


def _bound(field: FieldInfo, kind: type[Any]) -> Any:
    """The value of the field's ``Ge``/``Le`` constraint, if any."""
    attribute = kind.__name__.lower()
    return next((getattr(m, attribute) for m in field.metadata if isinstance(m, kind)), None)


def _is_list(annotation: Any) -> bool:
    return get_origin(annotation) is tuple


def _plain(annotation: Any) -> Any:
    """``X | None`` → ``X``."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = [arg for arg in get_args(annotation) if arg is not type(None)]
        return args[0] if len(args) == 1 else annotation
    return annotation


def _click_type(field: FieldInfo) -> Any:
    """The click parameter type of a (non-list, non-bool) field."""
    annotation = _plain(field.annotation)
    low, high = _bound(field, annotated_types.Ge), _bound(field, annotated_types.Le)
    if get_origin(annotation) is Literal:
        return click.Choice([str(value) for value in get_args(annotation)])
    if annotation is int:
        return click.IntRange(low, high) if low is not None or high is not None else click.INT
    if annotation is float:
        return click.FloatRange(low, high) if low is not None or high is not None else click.FLOAT
    if annotation is Path:
        return click.Path(file_okay=False, path_type=Path)
    return click.STRING


def shown_default(field: FieldInfo) -> str:
    """The default for people: the marker's words, else the value (lists comma-separated)."""
    marker = option_of(field).shown_default
    if marker is not None:
        return marker
    value = field.default
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, tuple):
        return f"`{','.join(value)}`" if value else "none"
    if isinstance(value, float):
        return f"`{value:g}`"
    if value is None or value == "":
        return "none"
    return f"`{value}`"


def plain_text(markdown: str) -> str:
    """``markdown`` without backticks (for ``--help``)."""
    return re.sub(r"`([^`]*)`", r"\1", markdown)


def _option(name: str, field: FieldInfo) -> Callable[[F], F]:
    marker = option_of(field)
    flag = flag_of(name, field)
    help_text = (
        f"{plain_text(field.description or '')} "
        f"[env var: {env_name(name)}; default: {plain_text(shown_default(field))}]"
    )
    annotation = _plain(field.annotation)
    if annotation is bool:
        return click.option(f"{flag}/--no-{flag[2:]}", name, default=None, help=help_text)
    if _is_list(annotation):
        return click.option(
            flag, name, multiple=True, metavar=marker.metavar, help=help_text + " (repeatable)"
        )
    kind = _click_type(field)
    metavar = marker.metavar or ("N" if annotation in (int, float) else None)
    return click.option(flag, name, type=kind, default=None, metavar=metavar, help=help_text)


def command_line_fields(
    model: type[BaseModel], names: Iterable[str] | None = None
) -> list[tuple[str, FieldInfo]]:
    """The fields of ``model`` (or only ``names``, in that order) that take an option."""
    fields = model.model_fields
    chosen = list(names) if names is not None else list(fields)
    return [
        (name, fields[name])
        for name in chosen
        if option_of(fields[name]).command_line and _plain(fields[name].annotation) is not SecretStr
    ]


def settings_options(
    model: type[BaseModel], names: Iterable[str] | None = None
) -> Callable[[F], F]:
    """Decorate a click command with one option per setting of ``model`` (or of ``names``)."""

    def decorate(function: F) -> F:
        for name, field in reversed(command_line_fields(model, names)):
            function = _option(name, field)(function)
        return function

    return decorate


def given_values(params: Mapping[str, Any]) -> dict[str, Any]:
    """The options actually given (not None, not an empty repeatable option)."""
    return {name: value for name, value in params.items() if value is not None and value != ()}


def describe_validation_error(model: type[BaseModel], exc: ValidationError) -> str:
    """Every problem of ``exc``, naming each field's option and variable."""
    fields = model.model_fields
    reasons = []
    for error in exc.errors():
        location = ".".join(str(part) for part in error["loc"])
        name = str(error["loc"][0]) if error["loc"] else ""
        if name in fields and command_line_fields(model, [name]):
            location = f"{name} ({flag_of(name, fields[name])} / {env_name(name)})"
        elif name in fields:
            location = f"{name} ({env_name(name)})"
        reasons.append(f"{location or 'settings'}: {error['msg']}")
    return "; ".join(reasons)
