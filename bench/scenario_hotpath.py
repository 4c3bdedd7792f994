"""Scenario ``hotpath``: an authenticated ``tools/call`` of ``echo``, Charter against its peers.

Every server runs as one uvicorn worker pinned to core 0; wrk runs on the other core with
``--connections`` (32) connections. The rounds interleave the servers (A B C … A B C …), so
a burst of load from elsewhere on the machine hits every server alike. Per server: req/s and
CPU microseconds per request (the server's utime + stime over the run, divided by the
requests), p50/p99 latency, the p50 at one connection, and the peak RSS (VmHWM).

Rows: Charter at 2025-11-25 with a bearer token (from its own token endpoint) and a session;
Charter at 2026-07-28 (stateless, bearer token, no session) when its ``server/discover``
answers; the official MCP SDK (``MCPServer``, stateless JSON), FastMCP 4 (stateless JSON) and
http-mcp (2026-07-28 requests; it speaks nothing else), all without auth; and the ceiling, a
bare Starlette route answering the same JSON-RPC.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

from bench import _charter
from bench._common import Measurement, RunContext, Section, mb, measure, median, ratio
from bench._harness import ROOT
from bench._peers import ensure_peer
from bench._procs import BenchError, Server, free_port, http_ready, run_server
from bench._wrk import HttpRequest

PEER_APPS = ROOT / "bench" / "_peer_apps.py"
CEILING = "bare Starlette endpoint (ceiling)"


@dataclass
class Row:
    """One server of the table, its request and its measurements."""

    label: str
    server: Server
    request: HttpRequest
    base_url: str
    loaded: list[Measurement] = field(default_factory=list)
    single: list[Measurement] = field(default_factory=list)


def _plain_headers(protocol: str) -> dict[str, str]:
    return {
        "Accept": _charter.ACCEPT,
        "Content-Type": "application/json",
        "MCP-Protocol-Version": protocol,
    }


@contextmanager
def _peer(ctx: RunContext, kind: str, venv: str | None) -> Iterator[Server]:
    python = sys.executable if venv is None else str(ensure_peer(venv).python)
    port = free_port()
    with run_server(
        kind,
        [python, str(PEER_APPS), kind, str(port)],
        port=port,
        ready=http_ready(f"http://127.0.0.1:{port}/ready"),
        log_dir=ctx.work,
        cwd=ROOT,
    ) as server:
        yield server


def _peer_rows(ctx: RunContext, stack: ExitStack, skipped: list[str]) -> list[Row]:
    rows: list[Row] = []
    legacy = HttpRequest(
        "POST", "/mcp", _plain_headers(_charter.LEGACY_VERSION), _charter.echo_call()
    )
    modern = HttpRequest(
        "POST",
        "/mcp/",
        _charter.stateless_headers("tools/call", "echo", None),
        _charter.echo_call(stateless=True),
    )
    peers: list[tuple[str, str | None, Callable[[dict[str, str]], str], HttpRequest]] = [
        (
            "sdk",
            "mcp",
            lambda v: f"official SDK mcp {v.get('mcp', '?')} stateless JSON, no auth",
            legacy,
        ),
        (
            "fastmcp",
            "fastmcp",
            lambda v: f"FastMCP {v.get('fastmcp', '?')} stateless JSON, no auth",
            legacy,
        ),
        (
            "http-mcp",
            "http-mcp",
            lambda v: f"http-mcp {v.get('http-mcp', '?')} (2026-07-28 requests), no auth",
            modern,
        ),
        ("ceiling", None, lambda _v: CEILING, legacy),
    ]
    for kind, venv, label, request in peers:
        try:
            versions = ensure_peer(venv).versions if venv else {}
            server = stack.enter_context(_peer(ctx, kind, venv))
            _charter.check_answer(
                server.base_url, request.path, request.headers, request.body or "", "hello bench"
            )
        except BenchError as exc:
            ctx.log(f"peer {kind} left out: {exc}")
            skipped.append(f"{kind}: {str(exc).splitlines()[0]}")
            continue
        rows.append(Row(label(versions), server, request, server.base_url))
    return rows


def _charter_rows(
    ctx: RunContext, stack: ExitStack, notes: list[str], skipped: list[str]
) -> list[Row]:
    target = stack.enter_context(_charter.deployment("sqlite"))
    server = stack.enter_context(_charter.charter_server(target, ctx.work))
    token = _charter.client_credentials_token(server.base_url, target.client_id)
    session = _charter.open_session(server.base_url, token)
    legacy = HttpRequest(
        "POST", "/mcp", _charter.legacy_headers(token, session), _charter.echo_call()
    )
    _charter.check_answer(server.base_url, "/mcp", legacy.headers, legacy.body or "", "hello bench")
    rows = [
        Row(
            "Charter tools/call, bearer token + session (2025-11-25), SQLite",
            server,
            legacy,
            server.base_url,
        )
    ]
    supported, why = _charter.stateless_support(server.base_url, token)
    label = "Charter tools/call, bearer token, stateless (2026-07-28)"
    if supported:
        modern = HttpRequest(
            "POST",
            "/mcp",
            _charter.stateless_headers("tools/call", "echo", token),
            _charter.echo_call(stateless=True),
        )
        _charter.check_answer(
            server.base_url, "/mcp", modern.headers, modern.body or "", "hello bench"
        )
        rows.append(Row(label, server, modern, server.base_url))
    else:
        notes.append(f"{label}: not supported by this build ({why}).")
        skipped.append(f"{label}: not supported by this build")
    return rows


def run(ctx: RunContext) -> list[Section]:
    """The hot-path table and the ratios table."""
    options = ctx.options
    notes: list[str] = []
    skipped: list[str] = []
    with ExitStack() as stack:
        ctx.log("hotpath: starting Charter and the peers (one uvicorn worker each, core 0)")
        rows = _charter_rows(ctx, stack, notes, skipped) + _peer_rows(ctx, stack, skipped)
        for row in rows:
            measure(
                ctx, row.server, row.request, connections=options.connections, duration=ctx.short
            )
        for round_index in range(options.rounds):
            for row in rows:
                loaded = measure(
                    ctx,
                    row.server,
                    row.request,
                    connections=options.connections,
                    duration=options.duration,
                )
                single = measure(ctx, row.server, row.request, connections=1, duration=ctx.short)
                row.loaded.append(loaded)
                row.single.append(single)
                ctx.log(
                    f"hotpath round {round_index + 1}/{options.rounds} {row.label}: "
                    f"{loaded.wrk.rps:,.0f} req/s, {loaded.cpu_us_per_request:,.0f} µs CPU/req, "
                    f"p99 {loaded.wrk.p99_ms:.1f} ms, errors {loaded.wrk.errors}"
                )
        peaks = {row.label: row.server.memory_kb()[1] for row in rows}
    return _sections(rows, peaks, notes, skipped, options.connections)


def _sections(
    rows: list[Row], peaks: dict[str, int], notes: list[str], skipped: list[str], connections: int
) -> list[Section]:
    summary = {
        row.label: {
            "rps": median([m.wrk.rps for m in row.loaded]),
            "cpu": median([m.cpu_us_per_request for m in row.loaded]),
            "p50": median([m.wrk.p50_ms for m in row.loaded]),
            "p99": median([m.wrk.p99_ms for m in row.loaded]),
            "one": median([m.wrk.p50_ms for m in row.single]),
            "errors": sum(m.wrk.errors for m in row.loaded + row.single),
        }
        for row in rows
    }
    ceiling = summary.get(CEILING)
    table: list[list[object]] = []
    for row in rows:
        figures = summary[row.label]
        table.append(
            [
                row.label,
                round(figures["rps"]),
                round(figures["cpu"]),
                figures["p50"],
                figures["p99"],
                figures["one"],
                round(mb(peaks[row.label]), 1),
                ratio(figures["rps"], ceiling["rps"]) if ceiling else float("nan"),
                ratio(figures["cpu"], ceiling["cpu"]) if ceiling else float("nan"),
                int(figures["errors"]),
            ]
        )
    main = Section(
        "Hot path: tools/call echo",
        f"One uvicorn worker per server pinned to core 0, wrk on the other core, {connections} "
        "connections, rounds interleaved; medians over the rounds. CPU per request is the "
        "server's utime+stime over the run divided by its requests. `x ceiling` columns: "
        "req/s ratio (higher is better) and CPU-per-request ratio (lower is better) against "
        "the bare Starlette endpoint.",
        [
            "server",
            "req/s",
            "CPU µs/req",
            "p50 ms",
            "p99 ms",
            "1-conn p50 ms",
            "peak RSS MB",
            "req/s x ceiling",
            "CPU x ceiling",
            "errors",
        ],
        table,
        notes + [f"left out: {item}" for item in skipped if "not supported" not in item],
    )
    charter = [row for row in rows if row.label.startswith("Charter")]
    others = [row for row in rows if not row.label.startswith("Charter")]
    ratios: list[list[object]] = []
    for mine in charter:
        for other in others:
            ratios.append(
                [
                    mine.label,
                    other.label,
                    ratio(summary[mine.label]["rps"], summary[other.label]["rps"]),
                    ratio(summary[mine.label]["cpu"], summary[other.label]["cpu"]),
                ]
            )
    versus = Section(
        "Hot path: Charter against each peer",
        "Charter's req/s divided by the peer's (above 1: Charter is faster) and Charter's CPU "
        "per request divided by the peer's (below 1: Charter is cheaper).",
        ["Charter row", "peer", "req/s ratio", "CPU/req ratio"],
        ratios,
    )
    return [main, versus]
