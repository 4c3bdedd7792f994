"""``bench/RESULTS.md``: the machine line, the exact command, the date, and every section."""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Sequence
from pathlib import Path

from bench._common import Section


def machine_line() -> str:
    """CPU model, cores, kernel, Python."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = os.cpu_count() or 0
    return (
        f"{model}, {cores} cores, Linux {platform.release()}, "
        f"Python {platform.python_version()} ({sys.implementation.name})"
    )


def cell(value: object) -> str:
    """A table cell: floats with sensible precision, NaN as a dash."""
    if isinstance(value, float):
        if value != value:
            return "n/a"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value).replace("|", "\\|")


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)


def render_section(section: Section) -> str:
    parts = [f"## {section.title}", "", section.text, ""]
    if section.rows:
        parts += [markdown_table(section.headers, section.rows), ""]
    parts += [f"- {note}" for note in section.notes]
    if section.notes:
        parts.append("")
    return "\n".join(parts)


def render(
    *,
    command: str,
    date: str,
    machine: str,
    load_before: str,
    load_after: str,
    peers: Sequence[str],
    sections: Sequence[Section],
    remark: str = "",
) -> str:
    """The whole RESULTS.md text."""
    head = [
        "# Benchmark results",
        "",
        f"- Machine: {machine}",
        f"- Command: `{command}`",
        f"- Date: {date}",
        f"- Load average (1/5/15 min) before: {load_before}; after: {load_after}",
    ]
    if peers:
        head.append(f"- Peers: {'; '.join(peers)}")
    if remark:
        head += ["", remark]
    head.append("")
    return "\n".join(head + [render_section(section) for section in sections])


def print_section(section: Section) -> None:
    """A section on the terminal (the same Markdown)."""
    print("\n" + render_section(section), flush=True)
