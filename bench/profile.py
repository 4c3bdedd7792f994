"""Where Charter's time goes under load: ``python -m bench.profile``.

Run from the repository root with the project's venv::

    .venv/bin/python -m bench.profile [--target tools|stateless|tokens|all] [--duration 20]
                                      [--rate 100]
                                      [--backend sqlite|postgres] [--nonblocking]

For each target, one ``charter serve`` worker on a scratch SQLite database (PostgreSQL with
``--backend postgres``), pinned to core 0 and started through ``bench._gc_probe`` so that
garbage collections are timed, is put under load by wrk on the other core:

- ``tools``: an authenticated ``tools/call`` of ``echo`` with a session (2025-11-25), 32
  connections, as in the hot-path table;
- ``stateless``: the same call at 2026-07-28 (no session, per-request ``_meta``);
- ``tokens``: refresh-token grants (rotation), 8 in flight, as in the token-endpoint table.

While the load runs, py-spy (built into ``bench/.peers/profilers``) samples the thread that
holds the worker's interpreter lock (``py-spy record --gil --rate 100 --format raw``: one line
per distinct stack with its sample count; at 100 samples a second, pausing the worker for
each sample costs it a few per cent of its throughput, which the report shows). Garbage
collection is measured in a separate run of the same load without the profiler. The
report ranks areas by the share of samples whose innermost frame is theirs (SQLAlchemy,
pydantic, JSON, Starlette routing and middleware, uvicorn, scheduling, logging, JOSE, …),
lists the hottest functions and Charter's own functions by inclusive share, and adds the
share of the worker's CPU time spent in garbage collection. The raw stacks are kept under
``bench/.results/`` for flame-graph tools (e.g. ``inferno-flamegraph`` or speedscope).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from bench import _charter, _seed
from bench._common import Options, RunContext, Section, measure
from bench._harness import ROOT, backends_from
from bench._peers import ensure_peer
from bench._procs import BenchError, Server, load_cpus, pinned
from bench._report import render_section
from bench._wrk import HttpRequest, WrkResult, run_wrk
from bench.scenario_tokens import single_use_requests

#: (area, path fragments) in order: the first match names the area of a frame.
AREAS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("SQLAlchemy", ("sqlalchemy/",)),
    ("DB driver (sqlite3/psycopg)", ("sqlite3/", "psycopg", "<built-in method execute")),
    ("pydantic", ("pydantic",)),
    ("JSON", ("json/", "orjson", "msgspec")),
    ("logging", ("logging/", "logging_setup")),
    ("JOSE / crypto (joserfc, cryptography)", ("joserfc/", "cryptography/", "hashlib", "hmac")),
    ("authlib", ("authlib/",)),
    (
        "Starlette routing + middleware",
        (
            "starlette/routing",
            "starlette/middleware",
            "starlette/applications",
            "starlette/_exception_handler",
            "starlette/exceptions",
            "starlette/_utils",
        ),
    ),
    ("Starlette requests/responses", ("starlette/",)),
    ("uvicorn / HTTP protocol", ("uvicorn/", "httptools", "h11/")),
    ("event loop (uvloop run loop, socket I/O)", ("asyncio/runners.py", "asyncio/base_events")),
    (
        "scheduling (asyncio, anyio, threads)",
        ("asyncio/", "anyio/", "concurrent/", "threading.py", "queue.py", "selectors", "uvloop"),
    ),
    ("Charter resourceserver", ("resourceserver/",)),
    ("Charter authserver", ("authserver/",)),
    ("jinja2", ("jinja2/",)),
)
FRAME = re.compile(r"^(?P<name>.*) \((?P<file>.*?)(?::(?P<line>\d+))?\)$")


@dataclass(frozen=True)
class Frame:
    name: str
    file: str

    @property
    def label(self) -> str:
        short = self.file
        for marker in ("site-packages/", "/lib/python3.", "wt-bench/", "/work/"):
            if marker in short:
                short = short.split(marker, 1)[1]
        return f"{self.name} ({short})"


def parse_frame(text: str) -> Frame:
    match = FRAME.match(text.strip())
    if match is None:
        return Frame(text.strip(), "")
    return Frame(match["name"], match["file"])


def parse_raw(text: str) -> list[tuple[list[Frame], int]]:
    """py-spy ``--format raw`` lines (``frame;frame;… count``, root first) as stacks."""
    stacks: list[tuple[list[Frame], int]] = []
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [parse_frame(part) for part in stack.split(";") if part]
        stacks.append((frames, int(count)))
    return stacks


def area_of(frame: Frame) -> str:
    if "logging_setup" in frame.file and frame.name.startswith("RequestIdMiddleware.__call__"):
        if "send_with_id" not in frame.name:
            return "Charter authserver"  # the request-id middleware wraps every request
    where = f"{frame.file} {frame.name}"
    for area, fragments in AREAS:
        if any(fragment in where for fragment in fragments):
            return area
    return "other (stdlib, C builtins)"


def analyse(stacks: Sequence[tuple[list[Frame], int]]) -> dict[str, list[tuple[str, float]]]:
    """Self share per area, hottest leaf functions, Charter functions by inclusive share."""
    total = sum(count for _frames, count in stacks) or 1
    areas: Counter[str] = Counter()
    within: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for frames, count in stacks:
        if not frames:
            continue
        leaf = frames[-1]
        areas[area_of(leaf)] += count
        for area in {area_of(frame) for frame in frames}:
            within[area] += count
        leaves[leaf.label] += count
        seen: set[str] = set()
        for frame in frames:
            if ("resourceserver/" in frame.file or "authserver/" in frame.file) and (
                frame.label not in seen
            ):
                seen.add(frame.label)
                inclusive[frame.label] += count
    return {
        "areas": [(name, count / total) for name, count in areas.most_common()],
        "within": [(name, count / total) for name, count in within.most_common()],
        "leaves": [(name, count / total) for name, count in leaves.most_common(15)],
        "charter": [(name, count / total) for name, count in inclusive.most_common(20)],
    }


def read_gc(path: Path) -> dict[str, list[float]]:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {"collections": [0, 0, 0], "seconds": [0.0, 0.0, 0.0], "max_ms": [0.0] * 3}


def profile_target(
    ctx: RunContext,
    target_name: str,
    backend: str,
    duration: float,
    rate: int,
    blocking: bool = True,
) -> tuple[list[Section], Path]:
    py_spy = ensure_peer("profilers").script("py-spy")
    gc_stats = ctx.work / f"gc-{target_name}.json"
    raw = ROOT / "bench" / ".results" / f"profile-{target_name}-{backend}.txt"
    with _charter.deployment(backend) as target:
        if target_name == "tokens":
            client_id = _seed.public_client(target.context, ("authorization_code", "refresh_token"))
            subject = _seed.user(target.context)
            count = int(max(2000, 800 * (duration + 5)))
            tokens = _seed.refresh_tokens(target.context, client_id, subject, 2 * count)
            forms = [_seed.refresh_form(client_id, token) for token in tokens]
            gc_request, request = single_use_requests(ctx, f"profile-{backend}", forms, count)
            connections = ctx.options.token_connections
        target.context.database.dispose()
        prefix = (sys.executable, "-m", "bench._gc_probe", str(gc_stats), "--")
        with _charter.charter_server(target, ctx.work, command_prefix=prefix) as server:
            token = _charter.client_credentials_token(server.base_url, target.client_id)
            if target_name == "tools":
                session = _charter.open_session(server.base_url, token)
                request = HttpRequest(
                    "POST", "/mcp", _charter.legacy_headers(token, session), _charter.echo_call()
                )
                connections = ctx.options.connections
                warm = gc_request = request
            elif target_name == "stateless":
                request = HttpRequest(
                    "POST",
                    "/mcp",
                    _charter.stateless_headers("tools/call", "echo", token),
                    _charter.echo_call(stateless=True),
                )
                connections = ctx.options.connections
                warm = gc_request = request
            else:
                warm = HttpRequest(
                    "POST",
                    "/token",
                    {"Content-Type": "application/x-www-form-urlencoded"},
                    body=urlencode(
                        _seed.credentials_form(target.client_id, _charter.CLIENT_SECRET)
                    ),
                )
            measure(ctx, server, warm, connections=connections, duration=3)
            time.sleep(1)
            plain, cpu_seconds, gc_delta = gc_window(
                ctx, server, gc_request, connections, duration, gc_stats
            )
            load = sample(ctx, server, request, connections, duration, py_spy, raw, rate, blocking)
    found = analyse(parse_raw(raw.read_text()))
    return _sections(target_name, backend, plain, load, cpu_seconds, gc_delta, found, raw), raw


def gc_window(
    ctx: RunContext,
    server: Server,
    request: HttpRequest,
    connections: int,
    duration: float,
    gc_stats: Path,
) -> tuple[WrkResult, float, dict[str, list[float]]]:
    """A load run without the profiler: throughput, worker CPU and garbage collections."""
    time.sleep(0.6)
    before = read_gc(gc_stats)
    measured = measure(ctx, server, request, connections=connections, duration=duration)
    time.sleep(0.6)
    after = read_gc(gc_stats)
    delta = {
        key: [a - b for a, b in zip(after[key], before[key], strict=True)]
        for key in ("collections", "seconds")
    }
    delta["max_ms"] = after["max_ms"]
    return measured.wrk, measured.cpu_s, delta


def sample(
    ctx: RunContext,
    server: Server,
    request: HttpRequest,
    connections: int,
    duration: float,
    py_spy: Path,
    raw: Path,
    rate: int,
    blocking: bool = True,
) -> WrkResult:
    """py-spy records the worker while wrk loads it: ``--gil`` (the thread holding the
    interpreter lock), ``--nonblocking`` (without pausing the worker; stacks may be torn)
    unless ``blocking``."""
    results: list[WrkResult] = []
    errors: list[BaseException] = []

    def load() -> None:
        try:
            results.append(
                run_wrk(
                    server.base_url,
                    request,
                    connections=connections,
                    duration=duration + 4,
                    script_dir=ctx.work,
                )
            )
        except BaseException as exc:  # reported below
            errors.append(exc)

    thread = threading.Thread(target=load)
    thread.start()
    time.sleep(2)
    command = [
        str(py_spy),
        "record",
        "--pid",
        str(server.pid),
        "--duration",
        str(round(duration)),
        "--rate",
        str(rate),
        "--gil",
        "--format",
        "raw",
        "--output",
        str(raw),
    ]
    if not blocking:
        command.append("--nonblocking")
    done = subprocess.run(
        pinned(command, load_cpus()),
        capture_output=True,
        text=True,
        check=False,
        timeout=duration + 60,
    )
    thread.join(timeout=duration + 90)
    if done.returncode != 0:
        raise BenchError(
            f"py-spy failed ({done.returncode}): {(done.stderr or done.stdout)[-800:]}"
        )
    if errors or not results:
        raise BenchError(f"the load failed while profiling: {errors[0] if errors else 'no result'}")
    return results[0]


def _sections(
    target_name: str,
    backend: str,
    plain: WrkResult,
    load: WrkResult,
    cpu_seconds: float,
    gc_delta: dict[str, list[float]],
    found: dict[str, list[tuple[str, float]]],
    raw: Path,
) -> list[Section]:
    gc_seconds = sum(gc_delta["seconds"])
    full = gc_delta["collections"][2]
    full_mean = gc_delta["seconds"][2] * 1000 / full if full else 0.0
    what = {
        "tools": "tools/call echo with a session (2025-11-25), 32 connections",
        "stateless": "tools/call echo, stateless (2026-07-28), 32 connections",
    }.get(target_name, "refresh grants, 8 in flight")
    gc_note = (
        f"without the profiler: {plain.rps:,.0f} req/s, "
        f"{cpu_seconds * 1e6 / max(1, plain.requests):,.0f} µs CPU per request, p99 "
        f"{plain.p99_ms:.1f} ms; garbage collection: {gc_seconds:.2f} s of "
        f"{cpu_seconds:.2f} s worker CPU "
        f"({100 * gc_seconds / cpu_seconds if cpu_seconds else 0:.1f}%); collections per "
        f"generation {', '.join(str(int(n)) for n in gc_delta['collections'])}; full "
        f"collections {full_mean:.1f} ms on average, longest {gc_delta['max_ms'][2]:.1f} ms"
    )
    return [
        Section(
            f"Profile ({what}, {backend}): self time by area",
            f"py-spy samples (--gil: the thread holding the interpreter lock) of the worker "
            f"while wrk ran ({load.rps:,.0f} req/s under the profiler); self: each sample "
            f"counted for the area of its innermost frame; inclusive: samples with a frame of "
            f"that area anywhere on the stack. Raw stacks: `{raw.relative_to(ROOT)}`.",
            ["area", "self share", "inclusive share"],
            [
                [name, f"{share * 100:.1f}%", f"{dict(found['within']).get(name, 0) * 100:.1f}%"]
                for name, share in found["areas"]
            ],
            [gc_note],
        ),
        Section(
            f"Profile ({what}, {backend}): hottest functions (self)",
            "Innermost frames by share of samples.",
            ["function", "share"],
            [[name, f"{share * 100:.1f}%"] for name, share in found["leaves"]],
        ),
        Section(
            f"Profile ({what}, {backend}): Charter's functions (inclusive)",
            "Share of samples with this Charter function anywhere on the stack.",
            ["function", "share"],
            [[name, f"{share * 100:.1f}%"] for name, share in found["charter"]],
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.profile", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--target", choices=("tools", "stateless", "tokens", "all"), default="all")
    parser.add_argument("--duration", type=float, default=20)
    parser.add_argument("--rate", type=int, default=100, help="py-spy samples per second")
    parser.add_argument(
        "--nonblocking",
        action="store_true",
        help="py-spy reads without pausing the worker (less overhead; stacks may be torn)",
    )
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument(
        "--from-raw", type=Path, metavar="FILE", help="only rank the stacks of a saved raw file"
    )
    args = parser.parse_args(argv)
    if args.from_raw is not None:
        found = analyse(parse_raw(args.from_raw.read_text()))
        for key, title in (("areas", "self"), ("within", "inclusive"), ("leaves", "hottest")):
            print(f"\n{title}:")
            for name, share in found[key]:
                print(f"  {share * 100:5.1f}%  {name}")
        return 0
    backends = backends_from(args.backend)
    if not backends:
        return 2
    options = Options(
        rounds=1,
        duration=args.duration,
        connections=32,
        token_connections=8,
        streams=0,
        backends=tuple(backends),
        quick=False,
        growth_clients=0,
        growth_tokens=0,
        purge_rows=0,
    )
    results_dir = ROOT / "bench" / ".results"
    results_dir.mkdir(parents=True, exist_ok=True)
    work = results_dir / f"profile-work-{os.getpid()}"
    work.mkdir(exist_ok=True)
    ctx = RunContext(options, work)
    os.sched_setaffinity(0, {int(load_cpus())})
    targets = ["tools", "stateless", "tokens"] if args.target == "all" else [args.target]
    report: list[str] = []
    for name in targets:
        ctx.log(f"profiling {name} for {args.duration:.0f} s")
        try:
            sections, _raw = profile_target(
                ctx, name, backends[0], args.duration, args.rate, not args.nonblocking
            )
        except BenchError as exc:
            print(f"profile {name} failed: {exc}", file=sys.stderr)
            return 1
        for section in sections:
            text = render_section(section)
            print("\n" + text, flush=True)
            report.append(text)
    out = results_dir / f"profile-{args.target}-{backends[0]}.md"
    out.write_text("\n".join(report))
    ctx.log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
