"""Charter tool module of the benchmarks: ``charter serve --tools bench._echo_tools``.

``echo(text)`` returns its text, like the ``echo`` tool every peer server in ``bench/`` serves.
``CHARTER_BENCH_FILLER_TOOLS=N`` adds N more small tools (``filler_0`` …) for the
``tools/list`` growth scenario (10 vs 1,000 tools).
"""

from __future__ import annotations

import os

from resourceserver.mcp import Context, Registry

FILLER_ENV = "CHARTER_BENCH_FILLER_TOOLS"
MAX_FILLERS = 5000


def register(registry: Registry) -> None:
    """Add ``echo`` and the filler tools to ``registry``."""

    @registry.tool(scopes={"mcp"}, annotations={"readOnlyHint": True})
    async def echo(ctx: Context, text: str) -> str:
        """Return the text unchanged."""
        return text

    count = max(0, min(int(os.environ.get(FILLER_ENV, "0") or 0), MAX_FILLERS))
    for index in range(count):
        _add_filler(registry, index)


def _add_filler(registry: Registry, index: int) -> None:
    async def filler(ctx: Context, text: str, repeat: int = 1) -> str:
        """A filler tool of the tools/list benchmark: the text repeated."""
        return text * max(1, min(repeat, 10))

    registry.tool(name=f"filler_{index}", scopes={"mcp"})(filler)
