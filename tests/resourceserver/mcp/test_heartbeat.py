"""Keep-alives of idle SSE streams come from one shared tick per worker (MCP 2025-11-25
"Transports" §Streamable HTTP): it wakes only the streams quiet for half a period, without
setting their wake flag (there is nothing new to read), marks each due once, and stops when
no stream is left."""

from __future__ import annotations

import asyncio

from resourceserver.mcp.heartbeat import Heartbeat
from resourceserver.mcp.wake import Wake


async def test_the_tick_wakes_only_quiet_streams_without_setting_their_flag() -> None:
    heartbeat = Heartbeat(period=600)  # ticks driven by the test
    quiet, busy = Wake(), Wake()
    a, b = heartbeat.add(quiet), heartbeat.add(busy)
    try:
        a.sent_at -= 400
        waiting = asyncio.ensure_future(quiet.wait())
        await asyncio.sleep(0)
        heartbeat.beat(300)
        assert await asyncio.wait_for(waiting, 1) is False  # woken, flag not set
        assert a.due and not b.due
        heartbeat.beat(300)  # already due: not woken again
        a.sent()
        assert not a.due
    finally:
        heartbeat.remove(a)
        heartbeat.remove(b)
        await heartbeat.aclose()
    assert len(heartbeat) == 0


async def test_an_idle_stream_gets_keepalives_from_the_shared_tick() -> None:
    heartbeat = Heartbeat(period=0.05)
    wake = Wake()
    beat = heartbeat.add(wake)
    seen = 0
    try:
        async with asyncio.timeout(5):
            while seen < 2:
                if beat.due:
                    beat.sent()
                    seen += 1
                await wake.wait()
    finally:
        heartbeat.remove(beat)
        await heartbeat.aclose()
    assert not wake.is_set()
