"""S67: does the token endpoint slow down with many registered clients?

Run from the repository root::

    python -m bench.many_clients [--sizes 100,100000] [--requests 300] [--concurrency 8]
                                 [--backends sqlite,postgres]

For each backend and each size, a fresh database gets that many confidential clients
(bulk insert), then a burst of client_credentials requests spread over 50 of them is timed
against a Charter server process on 127.0.0.1. The table gives p50/p99 and throughput per size
and the ratio of each size to the smallest: a ratio near 1 means client lookups do not depend
on the number of clients (primary-key lookups, no scans).
"""

from __future__ import annotations

import argparse
import random
import time

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

SECRET = "bench-client-secret-0123456789abcdef"
USED_CLIENTS = 50
WARMUP = 20
MAX_SIZE = 200_000


def measure(backend: str, size: int, requests: int, concurrency: int) -> tuple[BurstResult, float]:
    """One burst against a database holding ``size`` clients; also the seeding time."""
    with scratch_database(backend) as (database_url, data_dir):
        server = ready_server(database_url, data_dir)
        started = time.perf_counter()
        ids = _seed.confidential_clients(server, size, SECRET)
        seeding = time.perf_counter() - started
        server.database.dispose()
        chooser = random.Random(size)
        used = chooser.sample(ids, min(USED_CLIENTS, len(ids)))
        forms = [_seed.credentials_form(chooser.choice(used), SECRET) for _ in range(requests)]
        warm = [_seed.credentials_form(client_id, SECRET) for client_id in used[:WARMUP]]
        with server_process("charter", database_url, str(data_dir)) as url:
            result = burst(
                f"{size} clients", f"{url}/token", forms, concurrency=concurrency, warmup=warm
            )
    return result, seeding


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100,100000", help="client counts, comma-separated")
    parser.add_argument("--requests", type=int, default=300, help="requests per burst (max 5000)")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--rounds", type=int, default=1, help="repeat and pool (max 10)")
    args = parser.parse_args()
    rounds = max(1, min(args.rounds, 10))
    sizes = sorted({max(1, min(int(part), MAX_SIZE)) for part in args.sizes.split(",")})
    requests = max(1, min(args.requests, 5000))
    concurrency = max(1, min(args.concurrency, 64))
    print(
        f"{requests} requests per burst over {USED_CLIENTS} clients, {concurrency} in flight, "
        f"{rounds} round(s) pooled"
    )
    for backend in backends_from(args.backends):
        measured = []
        for size in sizes:
            runs = [measure(backend, size, requests, concurrency) for _ in range(rounds)]
            seeding = max(run[1] for run in runs)
            measured.append((size, merge([run[0] for run in runs]), seeding))
        base = measured[0][1]
        rows = [
            [
                result.label,
                f"{seeding:.1f}s",
                result.failures,
                result.p50_ms,
                result.p99_ms,
                result.throughput,
                result.p50_ms / base.p50_ms,
                result.p99_ms / base.p99_ms,
                base.throughput / result.throughput,
            ]
            for _size, result, seeding in measured
        ]
        print_table(
            f"Token endpoint vs registered clients, {backend}",
            [
                "registered",
                "seeding",
                "fail",
                "p50 ms",
                "p99 ms",
                "req/s",
                f"p50 x {sizes[0]}",
                f"p99 x {sizes[0]}",
                "thr slowdown",
            ],
            rows,
        )


if __name__ == "__main__":
    main()
