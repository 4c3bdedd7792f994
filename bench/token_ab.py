"""The token endpoint of two checkouts side by side: ``python -m bench.token_ab --ab OTHER``.

Issue 10's token figures (RFC 6749 §4.1.3, §4.4, §6) on a shared machine: one ``charter serve``
worker per checkout (A = ``OTHER``, B = this one), each on its own scratch database of each
backend, pinned to core 0 like the ``tokens`` scenario, both running for the whole comparison.
For every round and grant (``client_credentials``, ``refresh`` with rotation, PKCE
``authorization_code``) wrk loads A then B (B then A in the next round) at
``--token-connections`` in flight, so load arriving from elsewhere hits both alike; the medians
of grants/s, CPU ms per grant (the worker's ``utime + stime`` over the run, steadier than
grants/s) and p99 are printed per backend. Single-use refresh tokens and codes are seeded for
every round as in :mod:`bench.scenario_tokens`. Nothing is written but the work folder.

    .venv/bin/python -m bench.token_ab --ab /work/main --rounds 4 --duration 4
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urlencode

from bench import _charter, _seed
from bench._common import Measurement, Options, RunContext, measure
from bench._harness import ROOT, backends_from
from bench._wrk import HttpRequest
from bench.scenario_tokens import FORM, single_use_requests

GRANTS = ("client_credentials", "refresh", "code")


def _requests(
    ctx: RunContext, target: _charter.Deployment, label: str, rounds: int
) -> dict[str, list[HttpRequest]]:
    """Per grant, one request spec per round plus a spare for the warm-up."""
    per_run = int(2500 * ctx.options.duration)
    count = per_run * (rounds + 1)
    client_id = _seed.public_client(target.context, ("authorization_code", "refresh_token"))
    subject = _seed.user(target.context)
    refresh = [
        _seed.refresh_form(client_id, token)
        for token in _seed.refresh_tokens(target.context, client_id, subject, count)
    ]
    codes = [
        _seed.code_form(client_id, code)
        for code in _seed.codes(target.context, client_id, subject, count, ttl=6 * 3600)
    ]
    body = urlencode(_seed.credentials_form(target.client_id, _charter.CLIENT_SECRET))
    name = f"{target.backend}-{label}"
    return {
        "client_credentials": [HttpRequest("POST", "/token", FORM, body=body)] * (rounds + 1),
        "refresh": single_use_requests(ctx, f"refresh-{name}", refresh, per_run),
        "code": single_use_requests(ctx, f"code-{name}", codes, per_run),
    }


def compare(ctx: RunContext, trees: dict[str, Path], backend: str) -> None:
    """Interleaved rounds of A and B on ``backend``; prints each run and the medians."""
    rounds = ctx.options.rounds
    connections = ctx.options.token_connections
    with ExitStack() as stack:
        servers = {}
        specs = {}
        for label, tree in trees.items():
            target = stack.enter_context(_charter.deployment(backend))
            specs[label] = _requests(ctx, target, label, rounds)
            servers[label] = stack.enter_context(
                _charter.charter_server(
                    target, ctx.work, name=f"charter-{label}", env={"PYTHONPATH": str(tree)}
                )
            )
        runs: dict[tuple[str, str], list[Measurement]] = {
            (label, grant): [] for label in trees for grant in GRANTS
        }
        for label in trees:  # warm-up on the spare spec
            for grant in GRANTS:
                measure(
                    ctx,
                    servers[label],
                    specs[label][grant][-1],
                    connections=connections,
                    duration=ctx.short,
                )
        for index in range(rounds):
            for grant in GRANTS:
                for label in ("A", "B") if index % 2 == 0 else ("B", "A"):
                    run = measure(
                        ctx,
                        servers[label],
                        specs[label][grant][index],
                        connections=connections,
                        duration=ctx.options.duration,
                    )
                    runs[(label, grant)].append(run)
                    ctx.log(
                        f"{backend} round {index + 1} {grant} {label}: {run.wrk.rps:,.0f}/s, "
                        f"{run.cpu_us_per_request / 1000:.3f} ms CPU/grant, "
                        f"p99 {run.wrk.p99_ms:.1f} ms, errors {run.wrk.errors}, "
                        f"load {os.getloadavg()[0]:.1f}"
                    )
    for grant in GRANTS:
        for label, tree in trees.items():
            done = runs[(label, grant)]
            cpu = [run.cpu_us_per_request / 1000 for run in done]
            print(
                f"{backend} {grant} {label} ({tree}): "
                f"{statistics.median(run.wrk.rps for run in done):,.0f} grants/s, "
                f"{statistics.median(cpu):.3f} ms CPU/grant {[round(c, 3) for c in cpu]}, "
                f"p99 {statistics.median(run.wrk.p99_ms for run in done):.1f} ms",
                flush=True,
            )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--ab", type=Path, required=True, help="the other checkout (A)")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--duration", type=float, default=4)
    parser.add_argument("--token-connections", type=int, default=8)
    args = parser.parse_args(argv)
    backends = tuple(backends_from(args.backends))
    options = Options(
        rounds=max(1, args.rounds),
        duration=max(1.0, args.duration),
        connections=32,
        token_connections=args.token_connections,
        streams=0,
        backends=backends,
        quick=False,
        growth_clients=0,
        growth_tokens=0,
        purge_rows=0,
    )
    ctx = RunContext(options, Path(tempfile.mkdtemp(prefix="charter-token-ab-")))
    trees = {"A": args.ab.resolve(), "B": ROOT}
    ctx.log(f"A = {trees['A']}, B = {trees['B']}; load average {os.getloadavg()}")
    started = time.monotonic()
    for backend in backends:
        compare(ctx, trees, backend)
    ctx.log(f"done in {time.monotonic() - started:.0f} s; load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
