"""Where the memory of open streams goes: ``python -m bench.stream_memory [options]``.

One ``charter serve`` worker (started through :mod:`bench._mem_probe`) on a scratch SQLite or
PostgreSQL deployment; ``bench._streams`` opens ``--streams`` streams of each ``--kind``
(2025-11-25 GET streams, 2026-07-28 ``subscriptions/listen`` streams), after a warm-up of a few
streams opened and closed (one-time imports and caches are not per-stream memory). At three
moments — none open, all open, after they closed — it reads the worker's RSS and, on
``SIGUSR1``, the tracemalloc size (Python "tracemalloc"); with ``--frames N`` (N > 0) the
allocations from the first moment on are traced and the report ranks the growth, open against
none, by line and by traceback. Tracing costs memory and time of its own, so RSS per stream is
best read from a run with ``--frames 0`` (the default), and a traced run needs fewer
streams. Issue 10 target: <= 20 KB per stream, given back when they close.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import tracemalloc
from pathlib import Path
from tempfile import TemporaryDirectory

from bench import _charter, _seed
from bench._common import RunContext
from bench._streams import PER_TOKEN
from bench.scenario_streams import open_streams

SETTLE = 3.0


def signal_and_read(pid: int, folder: Path, index: int) -> dict[str, int]:
    os.kill(pid, signal.SIGUSR1)
    path = folder / f"memory-{index}.json"
    for _ in range(600):
        if path.exists():
            time.sleep(0.3)  # the snapshot is written before the JSON file
            return dict(json.loads(path.read_text()))
        time.sleep(0.1)
    raise RuntimeError("the probe wrote no memory figures")


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def report(folder: Path, before: int, opened: int, streams: int, top: int) -> None:
    first = tracemalloc.Snapshot.load(str(folder / f"snapshot-{before}.pickle"))
    second = tracemalloc.Snapshot.load(str(folder / f"snapshot-{before + 1}.pickle"))
    noise = tracemalloc.Filter(False, tracemalloc.__file__)
    first, second = first.filter_traces([noise]), second.filter_traces([noise])
    per = max(opened, 1)
    print(f"\n  top lines (growth with {opened:,} of {streams:,} open, bytes per stream):")
    for stat in second.compare_to(first, "lineno")[:top]:
        frame = stat.traceback[0]
        print(
            f"    {stat.size_diff / per:8.0f} B  {stat.count_diff / per:6.2f} blocks  "
            f"{frame.filename.split('site-packages/')[-1]}:{frame.lineno}"
        )
    print("\n  top tracebacks:")
    for stat in second.compare_to(first, "traceback")[: max(top // 2, 5)]:
        print(f"    {stat.size_diff / per:8.0f} B  {stat.count_diff / per:6.2f} blocks")
        for frame in list(stat.traceback)[-10:]:
            print(f"        {frame.filename.split('site-packages/')[-1]}:{frame.lineno}")


def measure_kind(
    ctx: RunContext, kind: str, backend: str, streams: int, frames: int, top: int
) -> None:
    folder = ctx.work / f"probe-{kind}"
    folder.mkdir()
    prefix = (sys.executable, "-m", "bench._mem_probe", str(folder), str(frames), "--")
    with (
        _charter.deployment(backend) as target,
        _charter.charter_server(
            target, ctx.work, command_prefix=prefix, cpus=None if frames else "0"
        ) as server,
    ):
        owners = _seed.confidential_clients(
            target.context, -(-streams // PER_TOKEN), _charter.CLIENT_SECRET
        )
        tokens = [_charter.client_credentials_token(server.base_url, o) for o in owners]
        with open_streams(ctx, server.base_url, tokens[:1], 20, kind):
            time.sleep(1)
        time.sleep(SETTLE)
        figures = []
        figures.append((rss_kb(server.pid), signal_and_read(server.pid, folder, 1)))
        sessions: list[int] = []

        def sessions_opened() -> None:  # GET: the sessions alone (no snapshot: numbering)
            time.sleep(SETTLE)
            sessions.append(rss_kb(server.pid))

        with open_streams(
            ctx,
            server.base_url,
            tokens,
            streams,
            kind,
            1800,
            sessions_opened if kind == "get" else None,
        ) as held:
            opened, refused = held.opened, held.refused
            time.sleep(SETTLE)
            figures.append((rss_kb(server.pid), signal_and_read(server.pid, folder, 2)))
        time.sleep(SETTLE)
        figures.append((rss_kb(server.pid), signal_and_read(server.pid, folder, 3)))
        collected_rss = rss_kb(server.pid)
        os.kill(server.pid, signal.SIGUSR2)
        while not (folder / "trimmed").exists():
            time.sleep(0.1)
        trimmed_rss = rss_kb(server.pid)
    (none_rss, none), (open_rss, full), (after_rss, after) = figures
    per = max(opened, 1)
    print(f"\n{kind} streams on {backend}: {opened:,} open ({refused} refused), frames={frames}")
    print(
        f"  RSS MB none/open/after: {none_rss / 1024:.1f} / {open_rss / 1024:.1f} / "
        f"{after_rss / 1024:.1f}; KB per stream {(open_rss - none_rss) / per:.1f}, "
        f"kept after close {(after_rss - none_rss) / per:.1f}; after a full collection "
        f"{(collected_rss - none_rss) / per:.1f}, after malloc_trim(0) "
        f"{(trimmed_rss - none_rss) / per:.1f}"
    )
    if sessions:
        print(
            f"  with the {opened:,} sessions alone (before any GET): RSS "
            f"{sessions[0] / 1024:.1f} MB, i.e. {(sessions[0] - none_rss) / per:.1f} KB per "
            f"session and {(open_rss - sessions[0]) / per:.1f} KB per GET stream on top"
        )
    print(
        f"  pymalloc blocks per stream: {(full['blocks'] - none['blocks']) / per:.1f}, kept "
        f"{(after['blocks'] - none['blocks']) / per:.1f}"
    )
    if frames > 0:
        print(
            f"  tracemalloc KB per stream {(full['traced'] - none['traced']) / per / 1024:.1f}, "
            f"kept after close {(after['traced'] - none['traced']) / per / 1024:.1f}"
        )
        report(folder, 1, opened, streams, top)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--kind", default="get,listen")
    parser.add_argument("--backend", default="sqlite", choices=("sqlite", "postgres"))
    parser.add_argument("--frames", type=int, default=0)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    with TemporaryDirectory(prefix="charter-stream-memory-") as work:
        ctx = RunContext(options=None, work=Path(work))  # type: ignore[arg-type]
        for kind in args.kind.split(","):
            measure_kind(ctx, kind, args.backend, args.streams, args.frames, args.top)


if __name__ == "__main__":
    main()
