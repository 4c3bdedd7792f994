"""Scenario ``growth``: does Charter slow down as its tables and its tool list grow?

- **Clients and tokens** (S67, per backend): the token endpoint (``client_credentials`` spread
  over 50 randomly chosen clients, ``--token-connections`` in flight) on a database with 100
  clients, against one with ``--growth-clients`` (100,000) clients and ``--growth-tokens``
  (1,000,000) access-token rows; both servers run, rounds interleave. Target: p99 within 1.2x.
- **Tools**: ``tools/list`` (2025-11-25, with a session) with 10 tools against 1,000 (SQLite):
  the first page, which is what a client asks first (Charter pages the list, so 1,000 tools
  take several pages; 10 fit in one). Target: within 2x.
- **Purge while serving** (S64, per backend): ``--purge-rows`` (1,000,000) expired access-token
  rows; the token endpoint's p99 before, and while ``charter tokens purge --yes`` deletes them
  in batches from another process. Target: p99 within 2x. One round (the rows are gone after).
"""

from __future__ import annotations

import os
import random
import subprocess
import time
from urllib.parse import urlencode

from bench import _charter, _seed
from bench._charter import Deployment
from bench._common import Measurement, RunContext, Section, measure, median, ratio
from bench._harness import ROOT
from bench._procs import BenchError, Server, load_cpus, pinned
from bench._wrk import HttpRequest
from bench.scenario_tokens import FORM

USED_CLIENTS = 50
SMALL_CLIENTS = 100
FEW_TOOLS, MANY_TOOLS = 10, 1000
BUILT_IN_TOOLS = 2  # whoami and echo


def credentials_request(ctx: RunContext, target: Deployment, client_ids: list[str]) -> HttpRequest:
    """client_credentials bodies over 50 of ``client_ids``, reused round-robin by wrk."""
    chooser = random.Random(len(client_ids))
    used = chooser.sample(client_ids, min(USED_CLIENTS, len(client_ids)))
    path = ctx.work / f"cc-{target.backend}-{len(client_ids)}.bodies"
    path.write_text(
        "\n".join(
            urlencode(_seed.credentials_form(chooser.choice(used), _charter.CLIENT_SECRET))
            for _ in range(1000)
        )
    )
    return HttpRequest("POST", "/token", FORM, bodies=path, cycle=True)


def seed_clients(ctx: RunContext, target: Deployment, count: int) -> list[str]:
    started = time.monotonic()
    more = _seed.confidential_clients(target.context, max(0, count - 1), _charter.CLIENT_SECRET)
    ids = [target.client_id, *more]
    ctx.log(f"growth/{target.backend}: {count:,} clients in {time.monotonic() - started:.1f} s")
    return ids


def seed_tokens(
    ctx: RunContext, target: Deployment, count: int, ids: list[str], expired: bool
) -> float:
    started = time.monotonic()
    _seed.access_token_rows(target.context, count, ids[:1000], expired=expired)
    took = time.monotonic() - started
    state = "expired" if expired else "live"
    ctx.log(f"growth/{target.backend}: {count:,} {state} access-token rows in {took:.1f} s")
    return took


def clients_and_tokens(ctx: RunContext, backend: str) -> list[object]:
    options = ctx.options
    with (
        _charter.deployment(backend) as small,
        _charter.deployment(backend) as big,
    ):
        small_ids = seed_clients(ctx, small, SMALL_CLIENTS)
        big_ids = seed_clients(ctx, big, options.growth_clients)
        seed_tokens(ctx, big, options.growth_tokens, big_ids, expired=False)
        small.context.database.dispose()
        big.context.database.dispose()
        with (
            _charter.charter_server(small, ctx.work, name="charter-small") as small_server,
            _charter.charter_server(big, ctx.work, name="charter-big") as big_server,
        ):
            pairs = [
                (small_server, credentials_request(ctx, small, small_ids)),
                (big_server, credentials_request(ctx, big, big_ids)),
            ]
            runs: list[list[Measurement]] = [[], []]
            for server, request in pairs:
                measure(
                    ctx, server, request, connections=options.token_connections, duration=ctx.short
                )
            for round_index in range(options.rounds):
                for index, (server, request) in enumerate(pairs):
                    result = measure(
                        ctx,
                        server,
                        request,
                        connections=options.token_connections,
                        duration=options.duration,
                    )
                    runs[index].append(result)
                ctx.log(
                    f"growth/{backend} round {round_index + 1}: "
                    f"p99 {runs[0][-1].wrk.p99_ms:.1f} ms "
                    f"({SMALL_CLIENTS} clients) vs {runs[1][-1].wrk.p99_ms:.1f} ms "
                    f"({options.growth_clients:,} clients)"
                )
    small_p99 = median([m.wrk.p99_ms for m in runs[0]])
    big_p99 = median([m.wrk.p99_ms for m in runs[1]])
    return [
        f"token endpoint, {backend}",
        f"{SMALL_CLIENTS} clients",
        f"{options.growth_clients:,} clients + {options.growth_tokens:,} token rows",
        round(median([m.wrk.rps for m in runs[0]])),
        round(median([m.wrk.rps for m in runs[1]])),
        small_p99,
        big_p99,
        ratio(big_p99, small_p99),
        "<= 1.2",
    ]


def list_tools(ctx: RunContext) -> list[object]:
    options = ctx.options
    sizes = (FEW_TOOLS, MANY_TOOLS)
    runs: list[list[Measurement]] = [[], []]
    with (
        _charter.deployment("sqlite") as few,
        _charter.deployment("sqlite") as many,
    ):
        servers: list[tuple[Server, HttpRequest]] = []
        with (
            _charter.charter_server(
                few,
                ctx.work,
                name="charter-10-tools",
                env={"CHARTER_BENCH_FILLER_TOOLS": str(FEW_TOOLS - BUILT_IN_TOOLS)},
            ) as few_server,
            _charter.charter_server(
                many,
                ctx.work,
                name="charter-1000-tools",
                env={"CHARTER_BENCH_FILLER_TOOLS": str(MANY_TOOLS - BUILT_IN_TOOLS)},
            ) as many_server,
        ):
            for target, server, size in (
                (few, few_server, FEW_TOOLS),
                (many, many_server, MANY_TOOLS),
            ):
                token = _charter.client_credentials_token(server.base_url, target.client_id)
                session = _charter.open_session(server.base_url, token)
                request = HttpRequest(
                    "POST", "/mcp", _charter.legacy_headers(token, session), _charter.tools_list()
                )
                _charter.check_answer(
                    server.base_url,
                    "/mcp",
                    request.headers,
                    request.body or "",
                    f'"filler_{size - BUILT_IN_TOOLS - 1}"' if size == FEW_TOOLS else "nextCursor",
                )
                servers.append((server, request))
                measure(ctx, server, request, connections=options.connections, duration=ctx.short)
            for round_index in range(options.rounds):
                for index, (server, request) in enumerate(servers):
                    runs[index].append(
                        measure(
                            ctx,
                            server,
                            request,
                            connections=options.connections,
                            duration=options.duration,
                        )
                    )
                ctx.log(
                    f"growth/tools round {round_index + 1}: {runs[0][-1].wrk.rps:,.0f} req/s "
                    f"({sizes[0]} tools) vs {runs[1][-1].wrk.rps:,.0f} req/s ({sizes[1]} tools)"
                )
    few_p99 = median([m.wrk.p99_ms for m in runs[0]])
    many_p99 = median([m.wrk.p99_ms for m in runs[1]])
    few_cpu = median([m.cpu_us_per_request for m in runs[0]])
    many_cpu = median([m.cpu_us_per_request for m in runs[1]])
    return [
        "tools/list (first page), sqlite",
        f"{FEW_TOOLS} tools ({round(few_cpu)} µs CPU/req)",
        f"{MANY_TOOLS} tools ({round(many_cpu)} µs CPU/req)",
        round(median([m.wrk.rps for m in runs[0]])),
        round(median([m.wrk.rps for m in runs[1]])),
        few_p99,
        many_p99,
        ratio(many_cpu, few_cpu),
        "<= 2 (CPU/req)",
    ]


def purge_while_serving(ctx: RunContext, backend: str) -> list[object]:
    options = ctx.options
    with _charter.deployment(backend) as target:
        ids = seed_clients(ctx, target, SMALL_CLIENTS)
        seed_tokens(ctx, target, options.purge_rows, ids, expired=True)
        target.context.database.dispose()
        with _charter.charter_server(target, ctx.work) as server:
            request = credentials_request(ctx, target, ids)
            measure(ctx, server, request, connections=options.token_connections, duration=ctx.short)
            before = [
                measure(
                    ctx,
                    server,
                    request,
                    connections=options.token_connections,
                    duration=options.duration,
                )
                for _ in range(options.rounds)
            ]
            command = [
                *_charter.serve_command(target)[:5],
                "tokens",
                "purge",
                "--batch-size",
                "1000",
                "--yes",
            ]
            purge_log = (ctx.work / f"purge-{backend}.log").open("wb")
            started = time.monotonic()
            purge = subprocess.Popen(
                pinned(command, load_cpus()),
                cwd=ROOT,
                env=_purge_env(),
                stdout=purge_log,
                stderr=subprocess.STDOUT,
            )
            during: list[Measurement] = []
            try:
                while purge.poll() is None and len(during) < 30:
                    during.append(
                        measure(
                            ctx,
                            server,
                            request,
                            connections=options.token_connections,
                            duration=options.duration,
                        )
                    )
                    ctx.log(
                        f"growth/purge/{backend}: purging; p99 {during[-1].wrk.p99_ms:.1f} ms "
                        f"({time.monotonic() - started:.0f} s so far)"
                    )
                purge.wait(timeout=3600)
            finally:
                if purge.poll() is None:
                    purge.kill()
                    purge.wait()
                purge_log.close()
            purge_seconds = time.monotonic() - started
            if purge.returncode != 0:
                raise BenchError(
                    f"charter tokens purge exited with {purge.returncode}; see "
                    f"{ctx.work / f'purge-{backend}.log'}"
                )
    before_p99 = median([m.wrk.p99_ms for m in before])
    during_p99 = max(m.wrk.p99_ms for m in during)
    return [
        f"purge while serving, {backend}",
        "before the purge",
        f"purging {options.purge_rows:,} expired rows ({purge_seconds:.0f} s)",
        round(median([m.wrk.rps for m in before])),
        round(median([m.wrk.rps for m in during])),
        before_p99,
        during_p99,
        ratio(during_p99, before_p99),
        "<= 2",
    ]


def _purge_env() -> dict[str, str]:
    return {**os.environ, **_charter.serve_env()}


def run(ctx: RunContext) -> list[Section]:
    rows: list[list[object]] = []
    notes: list[str] = []
    steps = [lambda b=b: clients_and_tokens(ctx, b) for b in ctx.options.backends]
    steps.append(lambda: list_tools(ctx))
    steps += [lambda b=b: purge_while_serving(ctx, b) for b in ctx.options.backends]
    for step in steps:
        try:
            rows.append(step())
        except BenchError as exc:
            notes.append(f"failed: {str(exc).splitlines()[0]}")
            ctx.log(f"growth step failed: {exc}")
    return [
        Section(
            "Growth: tables and tool lists",
            "Each row compares a small case (A) with a grown one (B) in the same run; the token "
            f"endpoint at {ctx.options.token_connections} in flight, tools/list at "
            f"{ctx.options.connections} connections; medians of {ctx.options.rounds} rounds "
            "(the purge row: the worst p99 of the runs while the purge ran).",
            ["what", "A", "B", "req/s A", "req/s B", "p99 ms A", "p99 ms B", "B / A", "target"],
            rows,
            notes,
        )
    ]
