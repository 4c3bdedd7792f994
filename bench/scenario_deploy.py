"""Scenarios ``idle`` and ``workers``: what one worker costs at rest, and what a second one buys.

- ``idle``: the RSS of one ``charter serve`` worker right after start-up (its metadata endpoint
  answered once), after 10 s at rest, and after 2,000 warm-up ``tools/call`` requests; per
  backend. Target (issue 10): <= 60 MB.
- ``workers`` (PostgreSQL only, since SQLite allows one worker): ``charter serve --workers 2``
  against ``--workers 1``, both free to use both cores (wrk shares the second one), for an
  authenticated ``tools/call`` with a session (any worker serves any request: sessions live in
  the database) and for ``client_credentials`` grants. Target: >= 1.7x.
"""

from __future__ import annotations

import time

from bench import _charter
from bench._common import Measurement, RunContext, Section, mb, measure, median, ratio
from bench._procs import BenchError, free_port
from bench._wrk import HttpRequest
from bench.scenario_tokens import FORM

REST_SECONDS = 10
WARM_REQUESTS = 2000


def run_idle(ctx: RunContext) -> list[Section]:
    rows: list[list[object]] = []
    for backend in ctx.options.backends:
        with _charter.deployment(backend) as target:
            target.context.database.dispose()
            with _charter.charter_server(target, ctx.work) as server:
                started = server.memory_kb()[0]
                time.sleep(3 if ctx.options.quick else REST_SECONDS)
                rested = server.memory_kb()[0]
                token = _charter.client_credentials_token(server.base_url, target.client_id)
                session = _charter.open_session(server.base_url, token)
                call = HttpRequest(
                    "POST", "/mcp", _charter.legacy_headers(token, session), _charter.echo_call()
                )
                sent = 0
                for _ in range(20):  # bounded: a server that stopped answering ends it too
                    warm = measure(ctx, server, call, connections=4, duration=ctx.short)
                    sent += warm.wrk.requests - warm.wrk.errors
                    if sent >= WARM_REQUESTS or warm.wrk.requests == 0:
                        break
                if sent < WARM_REQUESTS:
                    raise BenchError(f"idle/{backend}: only {sent} warm-up requests succeeded")
                time.sleep(2)
                after = server.memory_kb()
        rows.append(
            [
                backend,
                round(mb(started), 1),
                round(mb(rested), 1),
                round(mb(after[0]), 1),
                round(mb(after[1]), 1),
            ]
        )
        ctx.log(f"idle/{backend}: {mb(started):.1f} MB at start, {mb(after[0]):.1f} MB warm")
    return [
        Section(
            "Idle RSS of one charter serve worker",
            "VmRSS of the worker process: right after start-up, after resting, and after a "
            "warm-up of tools/call requests (peak = VmHWM). Target (issue 10): <= 60 MB.",
            ["backend", "RSS MB at start", "RSS MB rested", "RSS MB after warm-up", "peak MB"],
            rows,
        )
    ]


def run_workers(ctx: RunContext) -> list[Section]:
    options = ctx.options
    if "postgres" not in options.backends:
        return [
            Section(
                "Workers: --workers 2 against 1 (PostgreSQL)",
                "Skipped: needs CHARTER_BENCH_POSTGRES_URL (several workers need PostgreSQL).",
                [],
                [],
            )
        ]
    kinds = ("tools/call", "tools/call (2026-07-28)", "client_credentials")
    runs: dict[tuple[int, str], list[Measurement]] = {
        (workers, kind): [] for workers in (1, 2) for kind in kinds
    }
    with _charter.deployment("postgres") as target:
        target.context.database.dispose()
        second = _charter.Deployment(
            target.backend,
            target.database_url,
            target.data_dir,
            free_port(),
            target.context,
            target.client_id,
        )
        with (
            _charter.charter_server(target, ctx.work, name="charter-1-worker", cpus="0,1") as one,
            _charter.charter_server(
                second, ctx.work, name="charter-2-workers", workers=2, cpus="0,1"
            ) as two,
        ):
            requests: dict[int, dict[str, HttpRequest]] = {}
            for workers, server in ((1, one), (2, two)):
                token = _charter.client_credentials_token(server.base_url, target.client_id)
                session = _charter.open_session(server.base_url, token)
                call = HttpRequest(
                    "POST", "/mcp", _charter.legacy_headers(token, session), _charter.echo_call()
                )
                _charter.check_answer(
                    server.base_url, "/mcp", call.headers, call.body or "", "hello"
                )
                grant = HttpRequest(
                    "POST",
                    "/token",
                    FORM,
                    body=(
                        f"grant_type=client_credentials&client_id={target.client_id}"
                        f"&client_secret={_charter.CLIENT_SECRET}&scope=mcp"
                    ),
                )
                stateless = HttpRequest(
                    "POST",
                    "/mcp",
                    _charter.stateless_headers("tools/call", "echo", token),
                    _charter.echo_call(stateless=True),
                )
                requests[workers] = {
                    "tools/call": call,
                    "tools/call (2026-07-28)": stateless,
                    "client_credentials": grant,
                }
                for request in requests[workers].values():
                    measure(
                        ctx, server, request, connections=options.connections, duration=ctx.short
                    )
            for round_index in range(options.rounds):
                for kind in kinds:
                    for workers, server in ((1, one), (2, two)):
                        connections = (
                            options.connections
                            if kind.startswith("tools/call")
                            else options.token_connections
                        )
                        result = measure(
                            ctx,
                            server,
                            requests[workers][kind],
                            connections=connections,
                            duration=options.duration,
                        )
                        runs[(workers, kind)].append(result)
                        ctx.log(
                            f"workers round {round_index + 1} {kind} x{workers}: "
                            f"{result.wrk.rps:,.0f} req/s, errors {result.wrk.errors}"
                        )
    rows: list[list[object]] = []
    for kind in kinds:
        one_rps = median([m.wrk.rps for m in runs[(1, kind)]])
        two_rps = median([m.wrk.rps for m in runs[(2, kind)]])
        if one_rps != one_rps:
            raise BenchError("workers: no measurement")
        rows.append(
            [
                kind,
                round(one_rps),
                round(two_rps),
                ratio(two_rps, one_rps),
                median([m.cpu_us_per_request for m in runs[(1, kind)]]),
                median([m.cpu_us_per_request for m in runs[(2, kind)]]),
                median([m.wrk.p99_ms for m in runs[(1, kind)]]),
                median([m.wrk.p99_ms for m in runs[(2, kind)]]),
            ]
        )
    return [
        Section(
            "Workers: --workers 2 against 1 (PostgreSQL)",
            "Both servers may use both cores (taskset -c 0,1) and wrk runs on core 1, so the "
            "second worker shares its core with the load generator; CPU per request sums the "
            "master and its workers; the PostgreSQL server's own processes run on the same two "
            "cores. tools/call at 2025-11-25 reads its session from PostgreSQL; at 2026-07-28 it "
            "touches no database (token in the verified-token cache). Target (issue 10): >= 1.7x.",
            [
                "request",
                "req/s 1 worker",
                "req/s 2 workers",
                "ratio",
                "CPU µs/req 1",
                "CPU µs/req 2",
                "p99 ms 1",
                "p99 ms 2",
            ],
            rows,
        )
    ]
