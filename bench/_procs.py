"""Server processes of the benchmark harness and what the kernel says about them.

Each server runs as its own process, started through ``taskset -c CPUS`` so that it stays on
its core while the load generator uses the other one. Its CPU time (``utime + stime`` from
``/proc/PID/stat``, children included for ``--workers``) and memory (``VmRSS``, ``VmHWM`` from
``/proc/PID/status``) are read from ``/proc`` (Linux ``proc(5)``). Every process started here
is stopped when its ``with`` block ends, whatever happens inside it, and its output goes to a
log file whose tail is shown when it fails to start.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import httpx

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_KB = 1024


class BenchError(RuntimeError):
    """A benchmark could not run; the message says why and what to do."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_count() -> int:
    """Cores this process may use."""
    return len(os.sched_getaffinity(0))


def server_cpus() -> str:
    """The ``taskset -c`` list of the server's core: 0 (or all when there is only one)."""
    return "0"


def load_cpus() -> str:
    """The ``taskset -c`` list of the load generator's core: the last one (1 on two cores)."""
    cores = sorted(os.sched_getaffinity(0))
    return str(cores[-1])


def raise_open_files(wanted: int) -> int:
    """Raise this process's soft ``RLIMIT_NOFILE`` (inherited by children); the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (``/proc/PID/task/*/children``)."""
    found = [pid]
    index = 0
    while index < len(found):
        current = found[index]
        index += 1
        task_dir = Path(f"/proc/{current}/task")
        try:
            tasks = list(task_dir.iterdir())
        except OSError:
            continue
        for task in tasks:
            with suppress(OSError):
                found.extend(int(child) for child in (task / "children").read_text().split())
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its live descendants."""
    total = 0
    for each in descendants(pid):
        try:
            raw = Path(f"/proc/{each}/stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / CLOCK_TICKS


def memory_kb(pid: int) -> tuple[int, int]:
    """(current RSS, peak RSS) in KiB, summed over ``pid`` and its descendants."""
    rss = peak = 0
    for each in descendants(pid):
        try:
            lines = Path(f"/proc/{each}/status").read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            if line.startswith("VmRSS:"):
                rss += int(line.split()[1])
            elif line.startswith("VmHWM:"):
                peak += int(line.split()[1])
    return rss, peak


def load_average() -> str:
    """The 1, 5 and 15 minute load averages."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


@dataclass
class Server:
    """A running server: its name, base URL, process and log file."""

    name: str
    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def memory_kb(self) -> tuple[int, int]:
        return memory_kb(self.pid)

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def pinned(command: Sequence[str], cpus: str | None) -> list[str]:
    """``command`` run through ``taskset -c CPUS`` (as is when ``cpus`` is None)."""
    if cpus is None:
        return list(command)
    if shutil.which("taskset") is None:
        raise BenchError("taskset is missing: apt-get install util-linux")
    return ["taskset", "-c", cpus, *command]


def http_ready(url: str) -> Callable[[], bool]:
    """A readiness probe: ``GET url`` answers with any status."""

    def probe() -> bool:
        try:
            httpx.get(url, timeout=2)
        except httpx.TransportError:
            return False
        return True

    return probe


@contextmanager
def run_server(
    name: str,
    command: Sequence[str],
    *,
    port: int,
    ready: Callable[[], bool],
    log_dir: Path,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    cpus: str | None = "0",
    start_timeout: float = 120,
) -> Iterator[Server]:
    """Start ``command`` (pinned to ``cpus``), wait until ``ready()``; stop it afterwards."""
    log_path = log_dir / f"{name.replace(' ', '_').replace('/', '_')}-{port}.log"
    full_env = dict(os.environ)
    full_env.update(env or {})
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            pinned(command, cpus),
            cwd=cwd,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(name, f"http://127.0.0.1:{port}", process, log_path)
    try:
        deadline = time.monotonic() + start_timeout
        while not ready():
            if process.poll() is not None:
                raise BenchError(
                    f"{name} exited with status {process.returncode} before it was ready; "
                    f"its log ({log_path}) ends with:\n{server.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise BenchError(
                    f"{name} was not ready after {start_timeout:.0f} s; log {log_path}:\n"
                    f"{server.log_tail()}"
                )
            time.sleep(0.2)
        yield server
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes], timeout: float = 20) -> None:
    """SIGTERM, then SIGKILL to its whole process group if it does not exit in time."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    # Workers of a multi-process server must not outlive it.
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
