"""One command for every benchmark of issue 10: ``python -m bench.run``.

Run from the repository root with the project's venv::

    .venv/bin/python -m bench.run [--quick] [--rounds 3] [--duration 10] [--only hotpath,tokens]
                                  [--streams 1000] [--backends sqlite,postgres] [--results FILE]

Scenarios (``--only``, comma-separated): ``hotpath`` (Charter against the official SDK,
FastMCP, http-mcp and a bare Starlette ceiling), ``streams`` (open GET SSE streams while
another client calls tools), ``tokens`` (token endpoint: refresh and authorization-code grants,
with the joserfc floors), ``growth`` (100,000 clients and 1,000,000 token rows; 1,000 tools;
purging 1,000,000 expired rows while serving), ``idle`` (RSS of an idle worker) and
``workers`` (``--workers 2`` against 1 on PostgreSQL). The peers are built in their own
venvs under ``bench/.peers/`` on first use. A full run writes ``bench/RESULTS.md``; ``--quick``
or ``--only`` write ``bench/.results/RESULTS-partial.md`` unless ``--results`` says otherwise.
PostgreSQL runs when ``CHARTER_BENCH_POSTGRES_URL`` names a server (a scratch database is
created and dropped per deployment).
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from bench import (
    scenario_deploy,
    scenario_growth,
    scenario_hotpath,
    scenario_streams,
    scenario_tokens,
)
from bench._common import Options, RunContext, Section
from bench._harness import ROOT, backends_from
from bench._peers import PEERS_DIR, ensure_peer
from bench._procs import BenchError, cpu_count, load_average, load_cpus, raise_open_files
from bench._report import machine_line, print_section, render
from bench._wrk import wrk_binary

SCENARIOS: dict[str, Callable[[RunContext], list[Section]]] = {
    "hotpath": scenario_hotpath.run,
    "streams": scenario_streams.run,
    "tokens": scenario_tokens.run,
    "growth": scenario_growth.run,
    "idle": scenario_deploy.run_idle,
    "workers": scenario_deploy.run_workers,
}
RESULTS = ROOT / "bench" / "RESULTS.md"
PARTIAL = ROOT / "bench" / ".results" / "RESULTS-partial.md"
BUSY_REMARK = (
    "Measured on a shared 2-core machine while other jobs ran (see the load averages): "
    "absolute figures are noisy; the ratios measured in the same run, and CPU per request, "
    "are the figures to read."
)


def parse_options(argv: list[str]) -> tuple[Options, list[str], Path]:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="everything small (a few minutes)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 3; quick 2)")
    parser.add_argument("--duration", type=float, help="seconds per wrk run (default 10; quick 2)")
    parser.add_argument("--connections", type=int, default=32, help="hot-path connections")
    parser.add_argument(
        "--token-connections", type=int, default=8, help="token-endpoint requests in flight"
    )
    parser.add_argument(
        "--streams", type=int, help="open streams (default 1000; quick 200; max 10000)"
    )
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--only", default="", help=f"scenarios: {','.join(SCENARIOS)}")
    parser.add_argument("--growth-clients", type=int, help="registered clients (default 100000)")
    parser.add_argument("--growth-tokens", type=int, help="token rows (default 1000000)")
    parser.add_argument("--purge-rows", type=int, help="expired rows to purge (default 1000000)")
    parser.add_argument("--results", type=Path, help="where to write the Markdown results")
    parser.add_argument("--keep-work", action="store_true", help="keep logs and wrk scripts")
    args = parser.parse_args(argv)
    quick = bool(args.quick)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()] or list(SCENARIOS)
    unknown = [name for name in chosen if name not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")

    def pick(
        value: int | float | None, full: float, small: float, low: float, high: float
    ) -> float:
        chosen_value = value if value is not None else (small if quick else full)
        return max(low, min(float(chosen_value), high))

    options = Options(
        rounds=int(pick(args.rounds, 3, 2, 1, 20)),
        duration=pick(args.duration, 10, 2, 1, 120),
        connections=max(1, min(args.connections, 1024)),
        token_connections=max(1, min(args.token_connections, 256)),
        streams=int(pick(args.streams, 1000, 200, 1, 10_000)),
        backends=tuple(backends_from(args.backends)),
        quick=quick,
        growth_clients=int(pick(args.growth_clients, 100_000, 10_000, 100, 200_000)),
        growth_tokens=int(pick(args.growth_tokens, 1_000_000, 50_000, 0, 2_000_000)),
        purge_rows=int(pick(args.purge_rows, 1_000_000, 50_000, 1000, 2_000_000)),
    )
    if args.results is not None:
        results = args.results
    elif quick or args.only:
        results = PARTIAL
    else:
        results = RESULTS
    return options, chosen, results


def command_line(argv: list[str]) -> str:
    return shlex.join([".venv/bin/python", "-m", "bench.run", *argv])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    options, chosen, results = parse_options(argv)
    stop_on_signals()
    keep = "--keep-work" in argv
    try:
        wrk_binary()
    except BenchError as exc:
        print(exc, file=sys.stderr)
        return 2
    if cpu_count() < 2:
        print("warning: one core only; server and load generator will share it", file=sys.stderr)
    os.sched_setaffinity(0, {int(load_cpus())})
    open_files = raise_open_files(2 * options.streams + 4096)
    if open_files < options.streams + 1024:
        print(
            f"open-file limit is {open_files}: fewer streams than asked may open "
            f"(raise the hard limit, e.g. `ulimit -Hn {2 * options.streams + 4096}`)",
            file=sys.stderr,
        )
    load_before = load_average()
    started = time.strftime("%Y-%m-%d %H:%M %Z")
    work = Path(tempfile.mkdtemp(prefix="run-", dir=_results_dir()))
    ctx = RunContext(options, work)
    ctx.log(f"machine: {machine_line()}; load average {load_before}")
    ctx.log(f"scenarios: {', '.join(chosen)}; backends: {', '.join(options.backends)}")
    ctx.log(f"logs and wrk scripts in {work}")
    sections: list[Section] = []
    failed = False
    try:
        for name in chosen:
            ctx.log(f"== {name} ==")
            try:
                made = SCENARIOS[name](ctx)
            except BenchError as exc:
                failed = True
                ctx.log(f"{name} failed: {exc}")
                made = [Section(f"{name}: failed", str(exc), [], [])]
            except Exception as exc:  # an unexpected failure ends this scenario, not the run
                failed = True
                trace = work / f"{name}-traceback.txt"
                trace.write_text(traceback.format_exc())
                ctx.log(f"{name} failed: {type(exc).__name__}: {exc} (traceback in {trace})")
                made = [Section(f"{name}: failed", f"{type(exc).__name__}: {exc}", [], [])]
            for section in made:
                print_section(section)
            sections.extend(made)
    except KeyboardInterrupt:
        print("interrupted; servers stopped", file=sys.stderr)
        return 130
    text = render(
        command=command_line(argv),
        date=started,
        machine=machine_line(),
        load_before=load_before,
        load_after=load_average(),
        peers=_peer_versions(),
        sections=sections,
        remark=BUSY_REMARK,
    )
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(text)
    ctx.log(f"wrote {results}")
    if failed or keep:
        ctx.log(f"kept the logs in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


def stop_on_signals() -> None:
    """SIGTERM and SIGINT end the run through the normal clean-up (every server stopped),
    also when the shell started it in the background with SIGINT ignored."""

    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)


def _results_dir() -> Path:
    folder = ROOT / "bench" / ".results"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _peer_versions() -> list[str]:
    found: list[str] = []
    for name in ("mcp", "fastmcp", "http-mcp"):
        if (PEERS_DIR / name / "bin" / "python").exists():
            try:
                env = ensure_peer(name, log=False)
            except BenchError:
                continue
            versions = ", ".join(f"{key} {value}" for key, value in env.versions.items())
            found.append(f"{name} venv (Python {env.python_version}): {versions}")
    return found


if __name__ == "__main__":
    raise SystemExit(main())
