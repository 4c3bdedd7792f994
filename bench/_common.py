"""What every scenario of ``python -m bench.run`` shares: its options, measurements, sections.

A scenario gets a :class:`RunContext` (options, a work folder for logs and wrk scripts) and
returns :class:`Section` objects: a title, a few sentences, one table. The runner prints each
section as it is done and writes them all to ``bench/RESULTS.md``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from bench._procs import Server
from bench._wrk import HttpRequest, WrkResult, run_wrk


@dataclass(frozen=True)
class Options:
    """The command line, checked and bounded."""

    rounds: int
    duration: float
    connections: int
    token_connections: int
    streams: int
    backends: tuple[str, ...]
    quick: bool
    growth_clients: int
    growth_tokens: int
    purge_rows: int


@dataclass
class RunContext:
    """Options plus the run's work folder (logs, wrk scripts, body files)."""

    options: Options
    work: Path

    def log(self, message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)

    @property
    def short(self) -> float:
        """Duration of the one-connection and warm-up runs."""
        return max(1.0, min(3.0, self.options.duration / 3))


@dataclass
class Section:
    """One titled table of RESULTS.md."""

    title: str
    text: str
    headers: Sequence[str]
    rows: list[list[object]]
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Measurement:
    """One wrk run and the server's CPU time over it."""

    wrk: WrkResult
    cpu_s: float

    @property
    def cpu_us_per_request(self) -> float:
        return self.cpu_s * 1e6 / self.wrk.requests if self.wrk.requests else float("nan")


def measure(
    ctx: RunContext,
    server: Server,
    request: HttpRequest,
    *,
    connections: int,
    duration: float,
    base_url: str | None = None,
) -> Measurement:
    """Run wrk against ``server`` and read the server's CPU seconds around it."""
    before = server.cpu_seconds()
    result = run_wrk(
        base_url or server.base_url,
        request,
        connections=connections,
        duration=duration,
        script_dir=ctx.work,
    )
    return Measurement(result, server.cpu_seconds() - before)


def median(values: Sequence[float]) -> float:
    clean = [value for value in values if value == value]
    return statistics.median(clean) if clean else float("nan")


def ratio(numerator: float, denominator: float) -> float:
    if not denominator or denominator != denominator or numerator != numerator:
        return float("nan")
    return numerator / denominator


def path_of(url: str) -> str:
    return urlsplit(url).path or "/"


def mb(kib: float) -> float:
    return kib / 1024
