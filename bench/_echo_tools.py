"""Charter tool module of the benchmarks: ``charter serve --tools bench._echo_tools``.

``echo(text)`` returns its text, like the ``echo`` tool every peer server in ``bench/`` serves.
``CHARTER_BENCH_FILLER_TOOLS=N`` adds N more small tools (``filler_0`` …) for the
``tools/list`` growth scenario (10 vs 1,000 tools). ``CHARTER_BENCH_FANOUT=1`` adds what the
streams scenario's fan-out needs: the resource ``bench://fanout`` (2025-11-25 sessions
subscribe to it) and the tool ``bench_fanout``, which announces one change to every listener:
``notifications/resources/updated`` of that resource to subscribed sessions (MCP 2025-11-25
"Resources" §Subscriptions) and to listen streams asking for it, and a tools list change to
2026-07-28 listen streams (MCP 2026-07-28 "Subscriptions").
"""

from __future__ import annotations

import os

from resourceserver.mcp import Context, Registry

FILLER_ENV = "CHARTER_BENCH_FILLER_TOOLS"
MAX_FILLERS = 5000
FANOUT_ENV = "CHARTER_BENCH_FANOUT"
FANOUT_URI = "bench://fanout"


def register(registry: Registry) -> None:
    """Add ``echo`` and the filler tools to ``registry``."""

    @registry.tool(scopes={"mcp"}, annotations={"readOnlyHint": True})
    async def echo(ctx: Context, text: str) -> str:
        """Return the text unchanged."""
        return text

    if os.environ.get(FANOUT_ENV) == "1":
        _add_fanout(registry)
    count = max(0, min(int(os.environ.get(FILLER_ENV, "0") or 0), MAX_FILLERS))
    for index in range(count):
        _add_filler(registry, index)


def _add_filler(registry: Registry, index: int) -> None:
    async def filler(ctx: Context, text: str, repeat: int = 1) -> str:
        """A filler tool of the tools/list benchmark: the text repeated."""
        return text * max(1, min(repeat, 10))

    registry.tool(name=f"filler_{index}", scopes={"mcp"})(filler)


def _add_fanout(registry: Registry) -> None:
    @registry.resource(FANOUT_URI, name="fanout")
    def fanout_resource() -> str:
        """The resource the fan-out measurement updates."""
        return "fanout"

    @registry.tool(name="bench_fanout", scopes={"mcp"})
    async def bench_fanout(ctx: Context, kind: str = "listen") -> str:
        """Announce one change to every listener: ``kind`` get (resource update) or listen."""
        if kind == "get":
            await ctx.notify_resource_updated(FANOUT_URI)
        else:
            await ctx.notify_list_changed("tools")
        return "announced"
