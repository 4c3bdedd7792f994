"""Run ``charter serve`` as a real subprocess on a free loopback port for the length of a test.

The first start prints the ``admin``'s one-time password, which the first browser login must
change. Most tests only need a user to sign in with, again and again: reading
:attr:`CharterProcess.admin_password` first makes that password an ordinary one the way the
start-up text tells an operator to (``charter users passwd admin``, fed the same password).
``run_charter(..., one_time_admin=True)`` keeps it one-time, for tests of the change page.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support.live import free_port

#: Runs the console script's entry point without needing the package installed.
CHARTER = [sys.executable, "-c", "from authserver.cli.main import main; main()"]
_PASSWORD_LINE = re.compile(r"one-time password.*\n\s+(\S+)\s*\n", re.IGNORECASE)
_MCP_URL_LINE = re.compile(r"Connect your MCP client to (\S+)")
START_TIMEOUT = 60.0


@dataclass
class CharterProcess:
    """A running ``charter serve``: its URLs, its output so far, and the process."""

    process: subprocess.Popen[str]
    base_url: str
    data_dir: Path
    stderr_path: Path
    _stdout: list[str] = field(default_factory=list)
    #: ``charter`` with the group options of this process, to run admin commands on its database.
    admin_command: list[str] = field(default_factory=list)
    env: dict[str, str] | None = None
    one_time_admin: bool = False
    _admin_settled: bool = False

    @property
    def stdout(self) -> str:
        """Everything the process printed on stdout so far."""
        return "".join(self._stdout)

    @property
    def stderr(self) -> str:
        """Everything the process logged on stderr so far."""
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    @property
    def mcp_url(self) -> str:
        """The MCP URL the process printed."""
        match = _MCP_URL_LINE.search(self.stdout)
        assert match is not None, f"no MCP URL in the output:\n{self.stdout}"
        return match.group(1)

    @property
    def printed_password(self) -> str | None:
        """The one-time password printed on first start (None when none was printed)."""
        match = _PASSWORD_LINE.search(self.stdout)
        return match.group(1) if match else None

    @property
    def admin_password(self) -> str | None:
        """The password printed on first start, made reusable (unless ``one_time_admin``)."""
        password = self.printed_password
        if password is not None and not self.one_time_admin and not self._admin_settled:
            done = subprocess.run(
                [*self.admin_command, "users", "passwd", "admin", "--password-stdin"],
                input=password + "\n",
                capture_output=True,
                text=True,
                env=self.env or charter_env(),
                timeout=120,
                check=False,
            )
            assert done.returncode == 0, f"charter users passwd admin: {done.stderr}"
            self._admin_settled = True
        return password

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Send ``sig`` and wait for the exit; returns the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        return self.process.returncode


def charter_env(**extra: str) -> dict[str, str]:
    """The test's environment without ``CHARTER_*`` leftovers, plus ``extra``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("CHARTER_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


@contextmanager
def run_charter(
    data_dir: Path,
    *args: str,
    port: int | None = None,
    env: dict[str, str] | None = None,
    ready_path: str = "/.well-known/oauth-authorization-server",
    cwd: Path | None = None,
    program: Sequence[str] = CHARTER,
    one_time_admin: bool = False,
) -> Iterator[CharterProcess]:
    """Start ``charter serve --port PORT --data-dir DATA_DIR *args``; stop it afterwards.

    ``one_time_admin`` keeps the first admin's printed password one-time (see the module).
    """
    port = port or free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    stderr_path = data_dir.parent / f"charter-{port}.stderr.log"
    command: Sequence[str] = [
        *program,
        "serve",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        *args,
    ]
    with stderr_path.open("w") as stderr:
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=env or charter_env(),
            cwd=cwd or Path(__file__).resolve().parents[2],
        )
    running = CharterProcess(
        process,
        f"http://127.0.0.1:{port}",
        data_dir,
        stderr_path,
        admin_command=[*CHARTER, "--data-dir", str(data_dir), *_database_option(args)],
        env=env,
        one_time_admin=one_time_admin,
    )
    assert process.stdout is not None
    reader = threading.Thread(target=_read_lines, args=(process, running._stdout), daemon=True)
    reader.start()
    try:
        _wait_ready(running, ready_path)
        yield running
    finally:
        running.stop()
        reader.join(timeout=5)
        process.stdout.close()


def _database_option(args: Sequence[str]) -> list[str]:
    """``--database-url URL`` when ``args`` give one (else the environment or data dir decide)."""
    for index, arg in enumerate(args):
        if arg == "--database-url" and index + 1 < len(args):
            return [arg, args[index + 1]]
        if arg.startswith("--database-url="):
            return [arg]
    return []


def _read_lines(process: subprocess.Popen[str], into: list[str]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        into.append(line)


def _wait_ready(running: CharterProcess, path: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if running.process.poll() is not None:
            raise AssertionError(
                f"charter serve exited with {running.process.returncode}\n"
                f"stdout:\n{running.stdout}\nstderr:\n{running.stderr}"
            )
        try:
            if httpx.get(running.base_url + path, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"charter serve did not become ready\nstderr:\n{running.stderr}")
