"""CPU, SQL statements and Python calls per token grant, in process (RFC 6749 §4.1.3, §4.4, §6).

Load-independent figures for the token endpoint's own work, without HTTP: one thread calls
:func:`authserver.oauth.adapter.token_response` for ``count`` seeded requests of one grant type
on a scratch database and reports

* ``statements`` per grant (every cursor execution, ``BEGIN`` included; the fewest of five),
* ``calls`` per grant (Python function calls counted by :mod:`cProfile`, in a separate pass),
* ``cpu_ms`` per grant (:func:`time.process_time`, unprofiled) — the steadiest timing on a
  shared machine, still noisy: compare trees A/B interleaved in one run.

``python -m bench.grant_cpu refresh`` measures this tree; ``--ab OTHER_TREE`` runs this very
file against ``OTHER_TREE``'s ``authserver`` and this one alternately, ``--rounds`` times.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

GRANTS = ("refresh", "client_credentials", "authorization_code")
WARMUP = 30
COUNTED = 5
#: ``GRANT_CPU_SHOW_SQL=1`` prints every statement counted (first 160 characters).
SHOW_SQL = bool(os.environ.get("GRANT_CPU_SHOW_SQL"))


def forms_for(target: Any, grant: str, count: int) -> list[dict[str, str]]:
    """``count`` token request forms of ``grant`` on the seeded deployment ``target``."""
    from bench import _charter, _seed

    ctx = target.context
    if grant == "client_credentials":
        return [_seed.credentials_form(target.client_id, _charter.CLIENT_SECRET)] * count
    client_id = _seed.public_client(ctx, ("authorization_code", "refresh_token"))
    subject = _seed.user(ctx)
    if grant == "refresh":
        tokens = _seed.refresh_tokens(ctx, client_id, subject, count)
        return [_seed.refresh_form(client_id, token) for token in tokens]
    return [
        _seed.code_form(client_id, code) for code in _seed.codes(ctx, client_id, subject, count)
    ]


@contextmanager
def counting_statements(engine: Any) -> Iterator[list[str]]:
    """Every SQL statement ``engine`` runs while inside, in order (``BEGIN`` included)."""
    from sqlalchemy import event

    seen: list[str] = []

    def on_execute(*args: Any) -> None:
        statement = str(args[2])
        seen.append(statement.split(None, 1)[0].upper())
        if SHOW_SQL:
            print(" ".join(statement.split())[:160])

    def on_begin(*_args: Any) -> None:
        seen.append("BEGIN")

    event.listen(engine, "before_cursor_execute", on_execute)
    is_sqlite = engine.dialect.name == "sqlite"
    if not is_sqlite:  # SQLite's BEGIN IMMEDIATE is itself a cursor execution
        event.listen(engine, "begin", on_begin)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)
        if not is_sqlite:
            event.remove(engine, "begin", on_begin)


def measure(backend: str, grant: str, count: int, profile_rows: int = 0) -> dict[str, Any]:
    """The figures of ``count`` grants of ``grant`` on a fresh ``backend`` database."""
    import gc

    from authserver.oauth.adapter import token_response
    from bench import _charter

    with _charter.deployment(backend) as target:
        ctx = target.context
        forms = forms_for(target, grant, WARMUP + COUNTED + 2 * count)

        def run(batch: list[dict[str, str]]) -> None:
            for form in batch:
                status, body = token_response(ctx, form, [], {}, ip="127.0.0.1")
                if status != 200:
                    raise RuntimeError(f"{grant}: {status} {body}")

        run(forms[:WARMUP])
        # The fewest of a few grants: the key store's cache (re-read every few seconds, before the
        # grant's transaction) must not count as the grant's own statements.
        counted: list[list[str]] = []
        for form in forms[WARMUP : WARMUP + COUNTED]:
            with counting_statements(ctx.database.engine) as seen:
                run([form])
            counted.append(seen)
        seen = min(counted, key=len)
        timed = forms[WARMUP + COUNTED : WARMUP + COUNTED + count]
        gc.collect()
        started = time.process_time()
        run(timed)
        cpu = time.process_time() - started
        profiler = cProfile.Profile()
        profiler.enable()
        run(forms[WARMUP + COUNTED + count : WARMUP + COUNTED + 2 * count - 1])
        profiler.disable()
        stats = pstats.Stats(profiler)
        if profile_rows:
            stats.sort_stats("tottime").print_stats(profile_rows)
    return {
        "backend": backend,
        "grant": grant,
        "statements": len(seen),
        "statement_kinds": seen,
        "calls": round(stats.total_calls / (count - 1)),  # type: ignore[attr-defined]
        "cpu_ms": round(cpu / count * 1000, 3),
    }


def _run_tree(tree: Path, args: list[str]) -> dict[str, Any]:
    """This file run against ``tree``'s packages in a fresh interpreter; its JSON line."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    code = (
        "import runpy, sys; sys.argv = [sys.argv[0], *sys.argv[1:]]; "
        f"runpy.run_path({str(Path(__file__).resolve())!r}, run_name='__main__')"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, *args, "--json"],
        cwd=tree,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def ab(
    other: Path, args: list[str], rounds: int, emit: Callable[[str], None]
) -> dict[str, list[float]]:
    """Alternate ``other`` (A) and this tree (B); CPU ms per grant of each round."""
    here = Path(__file__).resolve().parents[1]
    figures: dict[str, list[float]] = {"A": [], "B": []}
    for index in range(rounds):
        for label, tree in (
            (("A", other), ("B", here)) if index % 2 == 0 else (("B", here), ("A", other))
        ):
            result = _run_tree(tree, args)
            figures[label].append(result["cpu_ms"])
            emit(
                f"round {index + 1} {label} {tree}: {result['cpu_ms']:.3f} ms cpu, "
                f"{result['statements']} statements, {result['calls']} calls"
            )
    for label in ("A", "B"):
        emit(f"{label}: median {statistics.median(figures[label]):.3f} ms/grant {figures[label]}")
    emit(f"load average {os.getloadavg()}")
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("grant", choices=GRANTS)
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--count", type=int, default=400)
    parser.add_argument("--profile", type=int, default=0, help="print the top N by own time")
    parser.add_argument("--ab", type=Path, help="another checkout to compare with (A)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.ab is not None:
        passed = [args.grant, "--backend", args.backend, "--count", str(args.count)]
        ab(args.ab.resolve(), passed, args.rounds, print)
        return
    result = measure(args.backend, args.grant, args.count, args.profile)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"load average {os.getloadavg()}")
        for key, value in result.items():
            print(f"{key}: {value}")


if __name__ == "__main__":
    main()
