"""Output conventions of the ``charter`` CLI: aligned tables or JSON, errors that say what to do
next, and confirmation of destructive commands.

Exit codes: 0 success, 1 the operation failed (e.g. not found), 2 usage error (click's own, and
destructive commands run without a terminal and without ``--yes``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NoReturn, TypeVar

import click

from authserver.display import neutral_text

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def fail(message: str, hint: str = "") -> NoReturn:
    """Stop with exit code 1; ``hint`` tells the operator what to do next."""
    raise click.ClickException(f"{message}\n  {hint}" if hint else message)


def usage_error(message: str) -> NoReturn:
    """Stop with exit code 2 (the command was called wrongly)."""
    raise click.UsageError(message)


def format_time(value: int | float | None) -> str:
    """A Unix time as ``YYYY-MM-DD HH:MM:SSZ`` (UTC), or ``-``."""
    if value is None:
        return "-"
    return datetime.fromtimestamp(value, tz=UTC).strftime("%Y-%m-%d %H:%M:%SZ")


@dataclass(frozen=True)
class Column:
    """One table column: its header, the record key it shows, and how to show it."""

    header: str
    key: str
    render: Callable[[Any], str] | None = None

    def cell(self, record: dict[str, Any]) -> str:
        value = record.get(self.key)
        if self.render is not None:
            return self.render(value)
        if value is None or value == "":
            return "-"
        if isinstance(value, list | tuple):
            return ", ".join(str(item) for item in value) or "-"
        if isinstance(value, bool):
            return "yes" if value else "no"
        return str(value)


def time_column(header: str, key: str) -> Column:
    """A column showing a Unix time."""
    return Column(header, key, format_time)


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Rows aligned under their headers, two spaces apart, no trailing blanks."""
    widths = [len(header) for header in headers]
    for row in rows:
        for index, cell in enumerate(row):
            widths[index] = max(widths[index], len(cell))
    rows = [[neutral_text(cell) for cell in row] for row in rows]
    lines = []
    for row in [list(headers), *rows]:
        padded = [cell.ljust(widths[index]) for index, cell in enumerate(row)]
        lines.append("  ".join(padded).rstrip())
    return "\n".join(lines)


def emit_records(
    records: Sequence[dict[str, Any]],
    columns: Sequence[Column],
    *,
    as_json: bool,
    empty: str,
) -> None:
    """Print ``records`` as a JSON array, or as a table (``empty`` when there are none)."""
    if as_json:
        click.echo(json.dumps(list(records), indent=2, sort_keys=True))
        return
    if not records:
        click.echo(empty, err=True)
        return
    rows = [[column.cell(record) for column in columns] for record in records]
    click.echo(render_table([column.header for column in columns], rows))


def emit_record(record: dict[str, Any], *, as_json: bool, times: Sequence[str] = ()) -> None:
    """Print one record as JSON, or as aligned ``key: value`` lines."""
    if as_json:
        click.echo(json.dumps(record, indent=2, sort_keys=True))
        return
    width = max((len(key) for key in record), default=0)
    for key, value in record.items():
        if key in times:
            shown = format_time(value)
        elif isinstance(value, list | tuple):
            shown = ", ".join(str(item) for item in value) or "-"
        elif isinstance(value, dict):
            shown = json.dumps(value, sort_keys=True)
        elif isinstance(value, bool):
            shown = "yes" if value else "no"
        else:
            shown = "-" if value is None or value == "" else str(value)
        click.echo(f"{key.replace('_', ' ').ljust(width)}  {neutral_text(shown)}")


def emit_result(message: str, record: dict[str, Any], *, as_json: bool) -> None:
    """Print the outcome of a change: ``record`` as JSON, or ``message`` for people."""
    if as_json:
        click.echo(json.dumps(record, indent=2, sort_keys=True))
    else:
        click.echo(message)


def stdin_is_tty() -> bool:
    """True when a person can answer a prompt (replaced in tests)."""
    return sys.stdin.isatty()


def confirm(action: str, *, yes: bool) -> None:
    """Ask before a destructive ``action``; without a terminal, demand ``--yes`` (exit 2)."""
    if yes:
        return
    if not stdin_is_tty():
        usage_error(f"refusing to {action} without confirmation; run again with --yes")
    click.confirm(f"{action[:1].upper()}{action[1:]}?", abort=True, err=True)


def json_option(function: F) -> F:
    """``--json``: machine-readable output."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")(function)


def yes_option(function: F) -> F:
    """``--yes``: do not ask for confirmation."""
    return click.option(
        "--yes", "-y", is_flag=True, help="Do not ask for confirmation (needed without a TTY)."
    )(function)
