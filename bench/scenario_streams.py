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

Fan-out: with the streams open, one ``tools/call`` of ``bench_fanout`` (``bench/_echo_tools.py``,
served with ``CHARTER_BENCH_FANOUT=1``) announces one change: a tools list change heard by every
listen stream, or an update of ``bench://fanout``, to which every GET stream's session
subscribed. The holder notes when each stream received it; the row gives the time from the call
to the first and to the last stream, how many got it, and the worker's CPU seconds meanwhile.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx

from bench import _charter, _seed
from bench._common import Measurement, RunContext, Section, mb, measure, median, ratio
from bench._echo_tools import FANOUT_ENV
from bench._harness import ROOT
from bench._procs import BenchError, Server, load_cpus, pinned
from bench._streams import PER_TOKEN
from bench._wrk import HttpRequest

SETTLE_SECONDS = 3.0


#: Longest wait for one fan-out to reach every stream.
FANOUT_WAIT_SECONDS = 400.0


def holder_command(
    base_url: str, tokens_file: Path, count: int, kind: str, *, pause: bool, fanout: bool = False
) -> list[str]:
    """The stream holder's command line (``pause``: 10 s between its sessions and streams;
    ``fanout``: GET sessions subscribe to the fan-out resource)."""
    command = [sys.executable, "-m", "bench._streams", base_url, str(tokens_file), str(count)]
    command += ["--kind", kind]
    if pause:
        command += ["--pause-after-sessions", "10"]
    if fanout:
        command.append("--fanout")
    return command


class HeldStreams:
    """The running holder: how many streams it opened, and its fan-out measurement."""

    def __init__(self, process: subprocess.Popen[str], lines: list[str]) -> None:
        self.process = process
        self.lines = lines
        self.opened = 0
        self.refused = 0
        self.answers = threading.Condition()

    def heard(self, line: str) -> None:
        with self.answers:
            self.lines.append(line)
            self.answers.notify_all()

    def _wait_for(self, prefix: str, since: int, timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        with self.answers:
            while True:
                for line in self.lines[since:]:
                    if line.startswith(prefix):
                        return line
                left = deadline - time.monotonic()
                if left <= 0 or self.process.poll() is not None:
                    return None
                self.answers.wait(left)

    def fanout(self, trigger: Callable[[], None]) -> tuple[int, float, float] | None:
        """Run ``trigger`` (which makes the server announce one change); (streams that got it,
        seconds from the trigger to the first, to the last), or None if the holder is gone."""
        assert self.process.stdin is not None
        since = len(self.lines)
        self.process.stdin.write(f"MARK {FANOUT_WAIT_SECONDS}\n")
        self.process.stdin.flush()
        if self._wait_for("MARKED", since, 30) is None:
            return None
        started = time.time()
        trigger()
        line = self._wait_for("FANOUT", since, FANOUT_WAIT_SECONDS + 30)
        if line is None:
            return None
        _, count, first, last = line.split()
        if int(count) == 0:
            return 0, 0.0, 0.0
        return int(count), float(first) - started, float(last) - started


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
    fanout: bool = False,
) -> Iterator[HeldStreams]:
    """Run the holder until the block ends; yield it once its streams are open.

    ``on_sessions`` runs (in a reader thread) once the holder opened its sessions, before
    its first stream: the holder then waits 10 s for it (``--pause-after-sessions``)."""
    tokens_file = ctx.work / "stream-tokens.txt"
    tokens_file.touch(mode=0o600)
    tokens_file.write_text("\n".join(tokens))
    command = holder_command(
        base_url, tokens_file, count, kind, pause=on_sessions is not None, fanout=fanout
    )
    process = subprocess.Popen(
        pinned(command, load_cpus()),
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    held = HeldStreams(process, lines)
    ready = threading.Event()

    def reader() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            held.heard(line.strip())
            if line.startswith(("SESSIONS", "OPENED", "REFUSED", "NOTE")):
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
        held.opened, held.refused = int(found[0][1]), int(found[0][2])
        yield held
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
        _charter.charter_server(target, ctx.work, env={FANOUT_ENV: "1"}) as server,
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
        trigger = HttpRequest(
            "POST", "/mcp", call.headers, _charter.fanout_call(kind, stateless=False)
        )
        with open_streams(ctx, server.base_url, tokens, options.streams, kind, fanout=True) as held:
            opened, refused = held.opened, held.refused
            open_seconds = time.monotonic() - started
            time.sleep(SETTLE_SECONDS)
            rss_open = server.memory_kb()[0]
            idle_open = idle_cpu_share(server, 2 * SETTLE_SECONDS)
            cpu_before = server.cpu_seconds()
            try:
                spread = held.fanout(lambda: _send(server.base_url, trigger))
            except (BenchError, httpx.HTTPError) as exc:
                notes.append(f"{backend}, {kind}: the fan-out failed ({exc!r}).")
                spread = None
            fanout_cpu = server.cpu_seconds() - cpu_before
            if spread is None or spread[0] < opened:
                got = "none" if spread is None else f"{spread[0]:,}"
                notes.append(f"{backend}, {kind}: the fan-out reached {got} of {opened:,} streams.")
            ctx.log(f"streams/{backend}/{kind} fan-out: {spread} ({fanout_cpu:.2f} s CPU)")
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
        spread[0] if spread else 0,
        spread[1] * 1000 if spread else None,
        spread[2] * 1000 if spread else None,
        fanout_cpu,
    ]
    return row, notes


def _send(base_url: str, request: HttpRequest) -> None:
    """Send one request and fail unless it was answered 200 with ``announced`` (the fan-out's
    own call may wait behind thousands of woken streams: a long timeout)."""
    response = httpx.post(
        f"{base_url}{request.path}",
        content=request.body or "",
        headers=dict(request.headers),
        timeout=FANOUT_WAIT_SECONDS,
    )
    if response.status_code != 200 or "announced" not in response.text:
        raise BenchError(f"bench_fanout answered {response.status_code}: {response.text[:300]}")


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
            "and after the streams; KB per stream = RSS growth / streams open. Fan-out: one "
            "change announced by a tools/call (a tools list change for listen streams, an "
            "update of a resource every GET stream's session subscribed to), the streams that "
            "received it, ms from the call to the first and to the last of them, and the "
            "worker's CPU seconds meanwhile. Each kind of stream gets a fresh worker.",
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
                "fan-out got",
                "fan-out first ms",
                "fan-out all ms",
                "fan-out CPU s",
            ],
            rows,
            notes,
        )
    ]
