"""Shared parts of the benchmarks: databases, server subprocesses, bursts, and tables.

Everything stays on loopback. Servers run in their own process (one uvicorn worker each) so
that the load generator and the server do not share an interpreter lock.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from authserver.context import AuthServer
from authserver.settings import AuthServerSettings
from authserver.storage.schema import prepare_database

ROOT = Path(__file__).resolve().parents[1]
ISSUER = "http://127.0.0.1:8000"
RESOURCE = f"{ISSUER}/mcp"
KEY_SECRET = "bench-key-encryption-secret"
POSTGRES_ENVS = ("CHARTER_BENCH_POSTGRES_URL", "CHARTER_TEST_POSTGRES_URL")


def postgres_server_url() -> str | None:
    """The PostgreSQL server to create scratch databases on (None: PostgreSQL is skipped)."""
    for name in POSTGRES_ENVS:
        if os.environ.get(name):
            return os.environ[name]
    return None


@contextmanager
def scratch_database(backend: str) -> Iterator[tuple[str, Path]]:
    """A fresh, empty database (``sqlite`` or ``postgres``) and a data folder; removed after."""
    with tempfile.TemporaryDirectory(prefix="charter-bench-") as folder:
        data_dir = Path(folder)
        if backend == "sqlite":
            yield f"sqlite:///{data_dir / 'charter.db'}", data_dir
            return
        base = postgres_server_url()
        if base is None:
            raise RuntimeError("PostgreSQL needs CHARTER_BENCH_POSTGRES_URL")
        name = f"charter_bench_{secrets.token_hex(4)}"
        admin = create_engine(base, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(base).set(database=name).render_as_string(hide_password=False), data_dir
        finally:
            with admin.connect() as conn:
                conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :name AND pid <> pg_backend_pid()"
                    ),
                    {"name": name},
                )
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
            admin.dispose()


def settings_for(database_url: str, data_dir: Path, issuer: str = ISSUER) -> AuthServerSettings:
    """The deployment settings every benchmark server uses."""
    return AuthServerSettings(
        issuer=issuer,
        data_dir=data_dir,
        database_url=database_url,
        key_encryption_key=KEY_SECRET,
    )


def ready_server(database_url: str, data_dir: Path, issuer: str = ISSUER) -> AuthServer:
    """A context on a migrated database with a signing key (for seeding rows)."""
    server = AuthServer.build(settings_for(database_url, data_dir, issuer))
    prepare_database(server.database.engine)
    server.keys.ensure_signing_key()
    return server


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def server_process(kind: str, database_url: str = "", data_dir: str = "") -> Iterator[str]:
    """Run ``bench/_serve.py KIND`` on a free port; yield its base URL; stop it afterwards."""
    port = free_port()
    command = [sys.executable, "-m", "bench._serve", kind, str(port), database_url, data_dir]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{kind} server exited with {process.returncode}")
            try:
                httpx.get(f"{base}/ready", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{kind} server did not start") from None
                time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass(frozen=True)
class BurstResult:
    """Latencies (seconds) of one burst, its wall time and its failures."""

    label: str
    latencies: list[float]
    wall: float
    failures: int

    @property
    def p50_ms(self) -> float:
        return statistics.median(self.latencies) * 1000

    @property
    def p99_ms(self) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))] * 1000

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.wall if self.wall else 0.0


def merge(results: Sequence[BurstResult]) -> BurstResult:
    """Several rounds of the same burst as one: pooled latencies, summed wall time."""
    return BurstResult(
        results[0].label,
        [latency for result in results for latency in result.latencies],
        sum(result.wall for result in results),
        sum(result.failures for result in results),
    )


def burst(
    label: str,
    url: str,
    forms: Sequence[dict[str, str]],
    *,
    concurrency: int,
    warmup: Sequence[dict[str, str]] = (),
) -> BurstResult:
    """POST every form in ``forms`` once, ``concurrency`` at a time; time each request."""
    return asyncio.run(_burst(label, url, list(forms), concurrency, list(warmup)))


async def _burst(
    label: str,
    url: str,
    forms: list[dict[str, str]],
    concurrency: int,
    warmup: list[dict[str, str]],
) -> BurstResult:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        for form in warmup:
            await client.post(url, data=form)
        queue: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        for form in forms:
            queue.put_nowait(form)
        latencies: list[float] = []
        failures = 0

        async def worker() -> None:
            nonlocal failures
            while not queue.empty():
                form = queue.get_nowait()
                started = time.perf_counter()
                response = await client.post(url, data=form)
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200:
                    failures += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    return BurstResult(label, latencies, wall, failures)


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A plain-text table with right-aligned numbers."""
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [max(len(h), *(len(row[i]) for row in cells)) for i, h in enumerate(headers)]
    print(f"\n{title}")
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        padded = [
            cell.rjust(width) if index else cell.ljust(width)
            for index, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        print("  ".join(padded))


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def backends_from(option: str) -> list[str]:
    """``sqlite,postgres`` → the backends to run (PostgreSQL only when configured)."""
    chosen = [name.strip() for name in option.split(",") if name.strip()]
    if "postgres" in chosen and postgres_server_url() is None:
        print("PostgreSQL skipped: set CHARTER_BENCH_POSTGRES_URL (or CHARTER_TEST_POSTGRES_URL)")
        chosen.remove("postgres")
    return chosen
