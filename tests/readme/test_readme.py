"""The README stays true: its settings table, its CLI reference and its tool example."""

from __future__ import annotations

import re
import shlex
import sys
import types
from pathlib import Path
from typing import Any

import click
from sqlalchemy import create_engine

from authserver.cli.main import charter
from authserver.config.servers import BASE_SCOPE
from authserver.config.settings import CharterSettings
from authserver.config.table import settings_table
from resourceserver.mcp import Context, Registry
from resourceserver.principal import Principal
from resourceserver.tools import builtin_registry

README = Path(__file__).resolve().parents[2] / "README.md"


def readme() -> str:
    return README.read_text(encoding="utf-8")


def test_every_setting_is_documented() -> None:
    text = readme()
    missing = [
        f"CHARTER_{name.upper()}"
        for name in CharterSettings.model_fields
        if f"`CHARTER_{name.upper()}`" not in text
    ]
    assert missing == []


def resolve(words: list[str]) -> click.Command | None:
    command: click.Command = charter
    for word in words:
        if not isinstance(command, click.Group):
            return command
        ctx = click.Context(command)
        found = command.get_command(ctx, word)
        if found is None:
            return None
        command = found
    return command


def test_every_cli_command_and_option_in_the_readme_exists() -> None:
    mentioned = set(re.findall(r"`(charter [a-z][a-z -]*?)(?: [A-Z\[(-].*?)?`", readme()))
    assert len(mentioned) >= 20
    for phrase in sorted(mentioned):
        words = shlex.split(phrase)[1:]
        command = resolve(words)
        assert command is not None, phrase
    named = set(re.findall(r"(?<![\w-])--[a-z][a-z-]+", readme()))
    known: set[str] = set()

    def collect(command: click.Command) -> None:
        for param in command.params:
            known.update(opt for opt in param.opts if opt.startswith("--"))
        if isinstance(command, click.Group):
            for name in command.list_commands(click.Context(command)):
                sub = command.get_command(click.Context(command), name)
                if sub is not None:
                    collect(sub)

    collect(charter)
    # options of other programs the README shows (claude, ruff, alembic)
    outside_charter = {"--transport", "--check", "--autogenerate", "--help"}
    assert named - known - outside_charter == set()


def test_quick_start_is_two_commands_and_ci_runs_them() -> None:
    quick = readme().split("## Quick start", 1)[1].split("## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", quick, flags=re.DOTALL)
    assert [block.strip().count("\n") for block in blocks] == [0, 0]
    assert blocks[1].strip() == "bash .ci/run"
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert "set -euo pipefail" in ci
    assert "pytest" in ci


async def test_the_tool_example_runs() -> None:
    source = readme().split("# mytools.py\n", 1)[1].split("```", 1)[0]
    module = types.ModuleType("readme_tools")
    exec(compile(source, "README.md", "exec"), module.__dict__)  # noqa: S102 - our own README
    registry: Any = module.registry
    assert isinstance(registry, Registry)

    class Channel:
        async def notify(self, method: str, params: dict[str, Any]) -> None:
            return None

        async def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
            return {}

        async def close_stream(self) -> None:
            return None

    principal = Principal("alice", "c1", frozenset({"mcp"}), "jti-1", 2_000_000_000)
    ctx = Context(principal=principal, session_id="s", channel=Channel())
    tool = registry.tools["shout"]
    assert tool.to_json()["description"] == "Repeat the text in capitals."
    result = await tool.call({"text": "hello"}, ctx)
    assert not result.get("isError")
    assert "HELLO! (asked by alice)" in str(result["content"])
    refused = await tool.call({"text": "  "}, ctx)
    assert refused["isError"] is True
    assert sys.modules.get("readme_tools") is None


def test_documented_defaults_match_the_settings() -> None:
    rows = dict(re.findall(r"^\| `CHARTER_([A-Z_]+)` \| ([^|]*) \|", readme(), flags=re.MULTILINE))
    checked = 0
    for name, field in CharterSettings.model_fields.items():
        default = field.default
        if isinstance(default, bool):
            expected = str(default).lower()
        elif isinstance(default, int | str) and default != "":
            expected = str(default)
        else:
            continue
        cell = rows[name.upper()]
        assert f"`{expected}`" in cell, (name, cell)
        checked += 1
    assert checked >= 15


def test_the_settings_table_is_generated_from_the_settings() -> None:
    """The README's table is exactly what the settings model says (one row per field)."""
    expected = settings_table()
    assert expected in readme(), (
        "README.md's configuration table differs from the settings; replace it with the "
        "output of `python -m authserver.config.table`:\n" + expected
    )
    assert expected.count("\n| `CHARTER_") == len(CharterSettings.model_fields)


def test_readme_says_why_the_notes_tools_are_not_listed_with_the_default_scope() -> None:
    """A new client's token has the base scope only; the README says why the notes tools are
    missing from its list, naming the scopes the code really uses."""
    registry = builtin_registry(create_engine("sqlite://"))
    default = set(str(CharterSettings.model_fields["default_scope"].default).split())
    granted = default | {BASE_SCOPE}
    hidden = {scope for tool in registry.tools.values() for scope in tool.scopes - granted}
    assert hidden == {"notes:read", "notes:write"}
    paragraph = readme().split("The built-in tools are `whoami`", 1)[1].split("\n\n")[0]
    text = " ".join(paragraph.split())
    for scope in sorted(hidden):
        assert f"`{scope}`" in text
    assert f"base scope `{BASE_SCOPE}`" in text
    assert "`CHARTER_DEFAULT_SCOPE`" in text
    assert "`403 insufficient_scope`" in text
    assert f"`{' '.join([BASE_SCOPE, *sorted(hidden)])}`" in text
