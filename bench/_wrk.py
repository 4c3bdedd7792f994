"""The load generator: ``wrk`` (Debian package ``wrk``) driven by a generated Lua script.

The script sets the method, headers and body of every request (or takes single-use bodies,
one per line, from a file: authorization codes and refresh tokens can be redeemed only once),
and its ``done`` hook prints one line ``BENCH-WRK {json}`` with the request count, the
duration, the errors and the latency percentiles, which :func:`parse_summary` reads. wrk
counts a response outside 2xx/3xx as a ``status`` error, so a benchmark that starts failing
shows it instead of reporting the speed of its error responses.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bench._procs import BenchError, load_cpus, pinned

MARKER = "BENCH-WRK "
INSTALL_HINT = "wrk is missing: install it with `apt-get install wrk` (Debian/Ubuntu), then re-run"


@dataclass(frozen=True)
class HttpRequest:
    """What every request of a run sends. ``bodies`` (a file of ``body_count`` bodies, one per
    line) overrides ``body``; ``cycle`` reuses those bodies round-robin instead of stopping
    when they run out. wrk's duration stays the one asked for even when a run stops early,
    so a run that used up its bodies measured a lower bound (see :func:`ran_out`)."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: str | None = None
    bodies: Path | None = None
    cycle: bool = False
    body_count: int = 0


@dataclass(frozen=True)
class WrkResult:
    """One wrk run."""

    requests: int
    duration_s: float
    socket_errors: int
    status_errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    @property
    def errors(self) -> int:
        return self.socket_errors + self.status_errors


def wrk_binary() -> str:
    """The path of ``wrk``; a clear error when it is not installed."""
    found = shutil.which("wrk")
    if found is None:
        raise BenchError(INSTALL_HINT)
    return found


def _lua_string(value: str) -> str:
    escaped = (
        value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    )
    return f'"{escaped}"'


DONE_HOOK = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH-WRK {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""

BODIES_HOOKS = """
local bodies = {}
local next_body = 1
init = function(args)
  for line in io.lines(args[1]) do
    if #line > 0 then bodies[#bodies + 1] = line end
  end
end
request = function()
  local body = bodies[next_body]
  if body == nil then
    if CYCLE then next_body = 1; body = bodies[1] else body = bodies[#bodies] end
  end
  next_body = next_body + 1
  return wrk.format(nil, nil, nil, body)
end
response = function(status, headers, body)
  if not CYCLE and next_body > #bodies then wrk.thread:stop() end
end
"""


def lua_script(request: HttpRequest) -> str:
    """The wrk script that sends ``request``."""
    lines = [
        f"wrk.method = {_lua_string(request.method)}",
        f"wrk.path = {_lua_string(request.path)}",
    ]
    for name, value in request.headers.items():
        lines.append(f"wrk.headers[{_lua_string(name)}] = {_lua_string(value)}")
    if request.body is not None:
        lines.append(f"wrk.body = {_lua_string(request.body)}")
    if request.bodies is not None:
        lines.append(f"CYCLE = {'true' if request.cycle else 'false'}")
        lines.append(BODIES_HOOKS)
    lines.append(DONE_HOOK)
    return "\n".join(lines) + "\n"


def parse_summary(output: str) -> WrkResult:
    """The ``BENCH-WRK`` line of a wrk run's output."""
    for line in output.splitlines():
        if line.startswith(MARKER):
            data = json.loads(line[len(MARKER) :])
            if int(data["requests"]) == 0:  # no latency was measured: none to report
                for key in ("p50_us", "p90_us", "p99_us", "max_us"):
                    data[key] = float("nan")
            return WrkResult(
                requests=int(data["requests"]),
                duration_s=int(data["duration_us"]) / 1e6,
                socket_errors=int(data["connect"])
                + int(data["read"])
                + int(data["write"])
                + int(data["timeout"]),
                status_errors=int(data["status"]),
                p50_ms=float(data["p50_us"]) / 1000,
                p90_ms=float(data["p90_us"]) / 1000,
                p99_ms=float(data["p99_us"]) / 1000,
                max_ms=float(data["max_us"]) / 1000,
            )
    raise BenchError(f"wrk printed no summary; its output was:\n{output[-2000:]}")


def run_wrk(
    base_url: str,
    request: HttpRequest,
    *,
    connections: int,
    duration: float,
    script_dir: Path,
    timeout_s: float = 10,
) -> WrkResult:
    """Run wrk (one thread, pinned to the load core) against ``base_url`` for ``duration`` s."""
    script = script_dir / f"wrk-{abs(hash((base_url, request.path, request.body)))}.lua"
    script.write_text(lua_script(request))
    command = [
        wrk_binary(),
        "-t1",
        f"-c{max(1, connections)}",
        f"-d{max(1, round(duration))}s",
        f"--timeout={max(1, round(timeout_s))}s",
        "-s",
        str(script),
        base_url,
    ]
    if request.bodies is not None:
        command += ["--", str(request.bodies)]
    try:
        completed = subprocess.run(
            pinned(command, load_cpus()),
            capture_output=True,
            text=True,
            timeout=duration + timeout_s + 60,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"wrk did not finish within {exc.timeout:.0f} s") from exc
    output = completed.stdout + completed.stderr
    if completed.returncode != 0:
        raise BenchError(f"wrk exited with {completed.returncode}:\n{output[-2000:]}")
    return parse_summary(output)


def ran_out(request: HttpRequest, result: WrkResult, connections: int) -> bool:
    """True when a single-use run used (nearly) all its bodies: its rate is a lower bound."""
    if request.bodies is None or request.cycle or not request.body_count:
        return False
    return result.requests >= request.body_count - connections
