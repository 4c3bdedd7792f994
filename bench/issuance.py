"""S66: token issuance bursts against a real socket — p50/p99 latency and throughput.

Run from the repository root::

    python -m bench.issuance [--requests 300] [--concurrency 8] [--backends sqlite,postgres]

For each database backend, four servers are measured in the same run, one after the other,
each in its own uvicorn process on 127.0.0.1:

- ``floor``: a minimal Starlette token endpoint that signs an RFC 9068-shaped ES256 JWT with
  joserfc and stores nothing — the cost of HTTP + form parsing + one signature;
- ``floor-db``: the same plus one INSERT per token on the same engine settings as Charter;
- ``charter client_credentials`` and ``charter authorization_code`` (PKCE redemption of codes
  seeded straight into the database) against :func:`authserver.app.create_app`.

Charter's figures are reported as ratios against the floors, measured minutes apart on the
same machine, so the ratios travel better than the absolute numbers. PostgreSQL runs when
``CHARTER_BENCH_POSTGRES_URL`` (or ``CHARTER_TEST_POSTGRES_URL``) names a server; a scratch
database is created and dropped.
"""

from __future__ import annotations

import argparse

from bench import _seed
from bench._harness import (
    BurstResult,
    backends_from,
    burst,
    merge,
    print_table,
    ready_server,
    scratch_database,
    server_process,
)

WARMUP = 20
SECRET = "bench-client-secret-0123456789abcdef"


def measure_backend(backend: str, requests: int, concurrency: int) -> list[BurstResult]:
    """The four bursts on one backend."""
    results: list[BurstResult] = []
    with scratch_database(backend) as (database_url, data_dir):
        server = ready_server(database_url, data_dir)
        [cc_client] = _seed.confidential_clients(server, 1, SECRET)
        code_client = _seed.public_client(server)
        subject = _seed.user(server)
        cc_form = _seed.credentials_form(cc_client, SECRET)
        cc_forms = [cc_form] * requests
        warm = [cc_form] * WARMUP

        with server_process("floor") as url:
            results.append(
                burst("floor", f"{url}/token", cc_forms, concurrency=concurrency, warmup=warm)
            )
        with server_process("floor-db", database_url) as url:
            results.append(
                burst("floor-db", f"{url}/token", cc_forms, concurrency=concurrency, warmup=warm)
            )
        with server_process("charter", database_url, str(data_dir)) as url:
            results.append(
                burst(
                    "charter client_credentials",
                    f"{url}/token",
                    cc_forms,
                    concurrency=concurrency,
                    warmup=warm,
                )
            )
            seeded = _seed.codes(server, code_client, subject, requests + WARMUP)
            forms = [_seed.code_form(code_client, code) for code in seeded]
            results.append(
                burst(
                    "charter authorization_code",
                    f"{url}/token",
                    forms[WARMUP:],
                    concurrency=concurrency,
                    warmup=forms[:WARMUP],
                )
            )
        server.database.dispose()
    return results


def report(backend: str, results: list[BurstResult]) -> None:
    """One table per backend: absolute figures and ratios to both floors."""
    floor, floor_db = results[0], results[1]
    rows = []
    for result in results:
        rows.append(
            [
                result.label,
                len(result.latencies),
                result.failures,
                result.p50_ms,
                result.p99_ms,
                result.throughput,
                result.p50_ms / floor.p50_ms,
                result.p99_ms / floor.p99_ms,
                floor.throughput / result.throughput,
                result.p50_ms / floor_db.p50_ms,
            ]
        )
    print_table(
        f"Token issuance, {backend}",
        [
            "server / grant",
            "n",
            "fail",
            "p50 ms",
            "p99 ms",
            "req/s",
            "p50 x floor",
            "p99 x floor",
            "thr slowdown",
            "p50 x floor-db",
        ],
        rows,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="requests per burst (max 5000)")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--rounds", type=int, default=1, help="repeat and pool (max 10)")
    args = parser.parse_args()
    requests = max(1, min(args.requests, 5000))
    concurrency = max(1, min(args.concurrency, 64))
    rounds = max(1, min(args.rounds, 10))
    print(
        f"{requests} requests per burst, {concurrency} in flight, {WARMUP} warm-up requests, "
        f"{rounds} round(s) pooled"
    )
    for backend in backends_from(args.backends):
        runs = [measure_backend(backend, requests, concurrency) for _ in range(rounds)]
        report(backend, [merge(same) for same in zip(*runs, strict=True)])


if __name__ == "__main__":
    main()
