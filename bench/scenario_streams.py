"""Scenario ``streams``: N open streams on one worker while another client calls tools.

Per backend (SQLite, PostgreSQL): one ``charter serve`` worker pinned to core 0. First the
baseline: wrk's ``tools/call`` throughput (``--connections``, with its own session) and the
worker's idle CPU. Then ``bench._streams`` (on the load core) opens ``--streams`` sessions
and one GET stream on each (MCP 2025-11-25 "Transports" §Listening for Messages from the
Server); with them open, the idle CPU, the RSS and the same ``tools/call`` run are measured
again. Memory per stream is the RSS growth divided by the streams open; the RSS after they
close shows whether it is given back. Targets (issue 10): 10,000 streams, throughput with them
open >= 0.8x of none, <= 20 KB per stream. The same then runs, on a fresh worker (so memory
kept by the first kind does not hide the second's), with 2026-07-28 ``subscriptions/listen``
streams (MCP 2026-07-28 "Subscriptions", ``bench._streams --kind listen``), when the build
answers ``server/discover``.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from bench import _charter, _seed
from bench._common import Measurement, RunContext, Section, mb, measure, median, ratio
from bench._harness import ROOT
from bench._procs import BenchError, Server, load_cpus, pinned
from bench._streams import PER_TOKEN
from bench._wrk import HttpRequest

SETTLE_SECONDS = 3.0


def holder_command(
    base_url: str, tokens_file: Path, count: int, kind: str, *, pause: bool
) -> list[str]:
    """The stream holder's command line (``pause``: 10 s between its sessions and streams)."""
    command = [sys.executable, "-m", "bench._streams", base_url, str(tokens_file), str(count)]
    command += ["--kind", kind]
    if pause:
        command += ["--pause-after-sessions", "10"]
    return command


def stop_holder(process: subprocess.Popen[str]) -> None:
    """Close the holder's stdin (it closes its streams and exits); terminate it if need be."""
    if process.stdin is not None:
        with suppress(OSError):
            process.stdin.close()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.terminate()  # still opening: it reads its stdin only once ready
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def open_streams(
    ctx: RunContext,
    base_url: str,
    tokens: list[str],
    count: int,
    kind: str = "get",
    wait_s: float | None = None,
    on_sessions: Callable[[], None] | None = None,
) -> Iterator[tuple[int, int]]:
    """Run the holder until the block ends; yield (streams open, streams refused).

    ``on_sessions`` runs (in a reader thread) once the holder opened its sessions, before
    its first stream: the holder then waits 10 s for it (``--pause-after-sessions``)."""
    tokens_file = ctx.work / "stream-tokens.txt"
    tokens_file.touch(mode=0o600)
    tokens_file.write_text("\n".join(tokens))
    command = holder_command(base_url, tokens_file, count, kind, pause=on_sessions is not None)
    process = subprocess.Popen(
        pinned(command, load_cpus()),
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    ready = threading.Event()

    def reader() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.strip())
            if line.startswith(("SESSIONS", "OPENED", "REFUSED")):
                ctx.log(f"streams: {line.strip()}")
            if line.startswith("SESSIONS") and on_sessions is not None:
                on_sessions()
            if line.startswith("READY"):
                ready.set()
        ready.set()

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        wait_s = wait_s or 60 + count * 0.1
        ready.wait(timeout=wait_s)
        found = [line.split() for line in lines if line.startswith("READY")]
        if not found:
            opened = [line for line in lines if line.startswith("OPENED")]
            raise BenchError(
                f"the stream holder did not open {count:,} streams in {wait_s:.0f} s "
                f"({opened[-1] if opened else 'none opened'}); its last lines:\n"
                + "\n".join(lines[-8:])
            )
        yield int(found[0][1]), int(found[0][2])
    finally:
        stop_holder(process)
        thread.join(timeout=5)
        closed = [line for line in lines if line.startswith("CLOSED")]
        if closed:
            ctx.log(f"streams: holder {closed[-1]} (open at the end, ended early)")


def idle_cpu_share(server: Server, seconds: float) -> float:
    """Share of one core the server used while nobody sent it a request."""
    before = server.cpu_seconds()
    time.sleep(seconds)
    return (server.cpu_seconds() - before) / seconds


KIND_NAMES = {"get": "GET (2025-11-25)", "listen": "subscriptions/listen (2026-07-28)"}


def run_backend(
    ctx: RunContext, backend: str, kind: str = "get"
) -> tuple[list[object] | None, list[str]]:
    """One row: ``kind`` streams on a fresh worker of ``backend`` (None when not supported)."""
    options = ctx.options
    notes: list[str] = []
    with (
        _charter.deployment(backend) as target,
        _charter.charter_server(target, ctx.work) as server,
    ):
        token = _charter.client_credentials_token(server.base_url, target.client_id)
        session = _charter.open_session(server.base_url, token)
        call = HttpRequest(
            "POST", "/mcp", _charter.legacy_headers(token, session), _charter.echo_call()
        )
        _charter.check_answer(server.base_url, "/mcp", call.headers, call.body or "", "hello")
        measure(ctx, server, call, connections=options.connections, duration=ctx.short)
        if kind == "listen":
            supported, why = _charter.stateless_support(server.base_url, token)
            if not supported:
                notes.append(
                    f"2026-07-28 subscriptions/listen streams: not supported by this build ({why})."
                )
                return None, notes
        baseline: list[Measurement] = []
        loaded: list[Measurement] = []
        idle_before = idle_cpu_share(server, SETTLE_SECONDS)
        rss_before = server.memory_kb()[0]
        for _ in range(options.rounds):
            baseline.append(
                measure(
                    ctx, server, call, connections=options.connections, duration=options.duration
                )
            )
        ctx.log(f"streams/{backend}: opening {options.streams:,} {KIND_NAMES[kind]} streams")
        owners = _seed.confidential_clients(
            target.context, -(-options.streams // PER_TOKEN), _charter.CLIENT_SECRET
        )
        tokens = [_charter.client_credentials_token(server.base_url, owner) for owner in owners]
        started = time.monotonic()
        with open_streams(ctx, server.base_url, tokens, options.streams, kind) as (
            opened,
            refused,
        ):
            open_seconds = time.monotonic() - started
            time.sleep(SETTLE_SECONDS)
            rss_open = server.memory_kb()[0]
            idle_open = idle_cpu_share(server, 2 * SETTLE_SECONDS)
            for index in range(options.rounds):
                result = measure(
                    ctx, server, call, connections=options.connections, duration=options.duration
                )
                loaded.append(result)
                ctx.log(
                    f"streams/{backend}/{kind} round {index + 1}: {opened:,} streams open, "
                    f"{result.wrk.rps:,.0f} req/s (none open: {baseline[index].wrk.rps:,.0f}), "
                    f"p99 {result.wrk.p99_ms:.1f} ms"
                )
        time.sleep(SETTLE_SECONDS)
        rss_after = server.memory_kb()[0]
    if refused:
        notes.append(f"{backend}, {kind}: {refused:,} of {options.streams:,} streams were refused.")
    rps_none = median([m.wrk.rps for m in baseline])
    rps_open = median([m.wrk.rps for m in loaded])
    row: list[object] = [
        backend,
        KIND_NAMES[kind],
        opened,
        round(rps_none),
        round(rps_open),
        ratio(rps_open, rps_none),
        median([m.wrk.p99_ms for m in baseline]),
        median([m.wrk.p99_ms for m in loaded]),
        sum(m.wrk.errors for m in loaded),
        idle_before * 100,
        idle_open * 100,
        round(mb(rss_before), 1),
        round(mb(rss_open), 1),
        round(mb(rss_after), 1),
        ratio(rss_open - rss_before, opened),
        open_seconds,
    ]
    return row, notes


def run(ctx: RunContext) -> list[Section]:
    rows: list[list[object]] = []
    notes: list[str] = []
    for backend in ctx.options.backends:
        for kind in KIND_NAMES:
            row, more = run_backend(ctx, backend, kind)
            if row is not None:
                rows.append(row)
            notes += [note for note in more if note not in notes]
    return [
        Section(
            f"Streams: {ctx.options.streams:,} open streams on one worker",
            "tools/call throughput of another client with no stream open and with the streams "
            f"open ({ctx.options.connections} connections, medians of {ctx.options.rounds} runs "
            "each); the worker's CPU while idle (share of one core) and its RSS before, with "
            "and after the streams; KB per stream = RSS growth / streams open. Each kind of "
            "stream gets a fresh worker.",
            [
                "backend",
                "kind",
                "streams open",
                "req/s none",
                "req/s open",
                "ratio",
                "p99 ms none",
                "p99 ms open",
                "errors open",
                "idle CPU % none",
                "idle CPU % open",
                "RSS MB before",
                "RSS MB open",
                "RSS MB after close",
                "KB per stream",
                "opening s",
            ],
            rows,
            notes,
        )
    ]
