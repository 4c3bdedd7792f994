"""A tool module for the graceful-shutdown test (S65), loaded with ``charter serve --tools``."""

from __future__ import annotations

import asyncio
from pathlib import Path

from resourceserver.mcp.context import Context
from resourceserver.mcp.registry import Registry


def register(registry: Registry) -> None:
    """Add ``slow_echo``, which answers after a delay."""

    @registry.tool(scopes={"mcp"})
    async def slow_echo(text: str, seconds: float, started_marker: str, ctx: Context) -> str:
        """Create the file ``started_marker``, report progress, wait ``seconds`` (at most 10),
        then return ``text``."""
        Path(started_marker).touch()
        await ctx.report_progress(0, 1, "started")
        await asyncio.sleep(min(max(seconds, 0.0), 10.0))
        return text
