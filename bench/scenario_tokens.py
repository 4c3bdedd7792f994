"""Scenario ``tokens``: the token endpoint (RFC 6749 §3.2) on one worker, SQLite and PostgreSQL.

Per backend, interleaved rounds of five servers/grants at ``--token-connections`` (8) requests
in flight, wrk on the other core:

- ``floor``: a minimal Starlette ``/token`` that signs an RFC 9068-shaped ES256 JWT with joserfc
  and stores nothing (``bench/_serve.py floor``, the S66 floor of ``bench.issuance``);
- ``floor-db``: the same plus one INSERT per token on the same engine settings as Charter;
- Charter ``client_credentials`` (``client_secret_post``), ``refresh_token`` (RFC 6749 §6,
  rotation: each seeded token is redeemed once) and ``authorization_code`` (PKCE S256 codes
  seeded straight into the database, each redeemed once), all against ``charter serve``.

Single-use codes and refresh tokens are written to a file that the wrk script reads one per
request; when they run out, wrk stops early and the rate is computed over the time it ran.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from urllib.parse import urlencode

from bench import _charter, _seed
from bench._charter import Deployment
from bench._common import Measurement, RunContext, Section, measure, median, ratio
from bench._harness import ROOT
from bench._procs import Server, free_port, http_ready, run_server
from bench._wrk import HttpRequest, ran_out

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@dataclass
class GrantRow:
    label: str
    server: Server
    requests: list[HttpRequest]
    runs: list[Measurement] = field(default_factory=list)
    exhausted: bool = False


@contextmanager
def floor_server(ctx: RunContext, kind: str, database_url: str = "") -> Iterator[Server]:
    """``bench._serve floor`` or ``floor-db`` on a free port, pinned to core 0."""
    port = free_port()
    with run_server(
        kind,
        [sys.executable, "-m", "bench._serve", kind, str(port), database_url, ""],
        port=port,
        ready=http_ready(f"http://127.0.0.1:{port}/token"),
        log_dir=ctx.work,
        cwd=ROOT,
    ) as server:
        yield server


def single_use_requests(
    ctx: RunContext, name: str, forms: list[dict[str, str]], per_run: int
) -> list[HttpRequest]:
    """One request spec per round, each with its own file of ``per_run`` bodies."""
    specs: list[HttpRequest] = []
    for index in range(0, len(forms), per_run):
        path = ctx.work / f"{name}-{index // per_run}.bodies"
        chunk = forms[index : index + per_run]
        path.write_text("\n".join(urlencode(form) for form in chunk))
        specs.append(HttpRequest("POST", "/token", FORM, bodies=path, body_count=len(chunk)))
    return specs


def per_run_count(ctx: RunContext) -> int:
    """Single-use credentials per run: enough for 2,500 grants/s, from 2,000 to 50,000."""
    return int(max(2000, min(50_000, 2500 * ctx.options.duration)))


def seed_single_use(
    ctx: RunContext, target: Deployment, rounds: int
) -> tuple[list[HttpRequest], list[HttpRequest]]:
    """Refresh tokens and codes for every round (plus warm-up): their request specs."""
    per_run = per_run_count(ctx)
    count = per_run * (rounds + 1)
    client_id = _seed.public_client(target.context, ("authorization_code", "refresh_token"))
    subject = _seed.user(target.context)
    ctx.log(f"tokens/{target.backend}: seeding {count:,} refresh tokens and {count:,} codes")
    refresh = [
        _seed.refresh_form(client_id, token)
        for token in _seed.refresh_tokens(target.context, client_id, subject, count)
    ]
    codes = [
        _seed.code_form(client_id, code)
        for code in _seed.codes(target.context, client_id, subject, count, ttl=6 * 3600)
    ]
    return (
        single_use_requests(ctx, f"refresh-{target.backend}", refresh, per_run),
        single_use_requests(ctx, f"code-{target.backend}", codes, per_run),
    )


def run_backend(ctx: RunContext, backend: str) -> Section:
    options = ctx.options
    with ExitStack() as stack:
        target = stack.enter_context(_charter.deployment(backend))
        refresh, codes = seed_single_use(ctx, target, options.rounds)
        cc_body = urlencode(_seed.credentials_form(target.client_id, _charter.CLIENT_SECRET))
        static = HttpRequest("POST", "/token", FORM, body=cc_body)
        floor = stack.enter_context(floor_server(ctx, "floor"))
        floor_db = stack.enter_context(floor_server(ctx, "floor-db", target.database_url))
        charter = stack.enter_context(_charter.charter_server(target, ctx.work))
        rows = [
            GrantRow("floor: joserfc ES256 signature only", floor, [static]),
            GrantRow("floor-db: signature + one INSERT", floor_db, [static]),
            GrantRow("Charter client_credentials", charter, [static]),
            GrantRow("Charter refresh_token (rotation)", charter, refresh),
            GrantRow("Charter authorization_code (PKCE)", charter, codes),
        ]
        for row in rows:  # warm-up: the last spec of each single-use list is spare
            measure(
                ctx,
                row.server,
                row.requests[-1],
                connections=options.token_connections,
                duration=ctx.short,
            )
        for round_index in range(options.rounds):
            for row in rows:
                spec = row.requests[round_index % len(row.requests)]
                result = measure(
                    ctx,
                    row.server,
                    spec,
                    connections=options.token_connections,
                    duration=options.duration,
                )
                row.runs.append(result)
                if ran_out(spec, result.wrk, options.token_connections):
                    row.exhausted = True
                ctx.log(
                    f"tokens/{backend} round {round_index + 1}/{options.rounds} {row.label}: "
                    f"{result.wrk.rps:,.0f}/s, p99 {result.wrk.p99_ms:.1f} ms, "
                    f"{result.cpu_us_per_request / 1000:.2f} ms CPU/req, "
                    f"errors {result.wrk.errors}"
                )
    floor_rps = median([m.wrk.rps for m in rows[0].runs])
    table: list[list[object]] = []
    for row in rows:
        rps = median([m.wrk.rps for m in row.runs])
        table.append(
            [
                row.label,
                round(rps),
                median([m.cpu_us_per_request for m in row.runs]) / 1000,
                median([m.wrk.p50_ms for m in row.runs]),
                median([m.wrk.p99_ms for m in row.runs]),
                ratio(rps, floor_rps),
                sum(m.wrk.requests for m in row.runs),
                sum(m.wrk.errors for m in row.runs),
            ]
        )
    notes = [
        f"{row.label}: a run used up its single-use credentials, so its rate is a lower bound "
        "(wrk reports the whole duration); raise the count in bench/scenario_tokens.py"
        for row in rows
        if row.exhausted
    ]
    return Section(
        f"Token endpoint, {backend}",
        f"One worker pinned to core 0, wrk on the other core, {options.token_connections} "
        f"requests in flight, {options.rounds} interleaved rounds (medians). Targets (issue "
        "10): refresh >= 1,000/s, authorization_code >= 800/s, p99 < 50 ms; PostgreSQL within "
        "1.5x of SQLite.",
        [
            "server / grant",
            "grants/s",
            "CPU ms/grant",
            "p50 ms",
            "p99 ms",
            "x floor",
            "n",
            "errors",
        ],
        table,
        notes,
    )


def run(ctx: RunContext) -> list[Section]:
    return [run_backend(ctx, backend) for backend in ctx.options.backends]
