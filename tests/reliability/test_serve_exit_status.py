"""The exit status of ``charter serve`` (:mod:`authserver.ops.clean_exit`): 0 after a drained
stop on SIGTERM or SIGINT; non-zero when the server or a worker could not start, or when a second
Ctrl+C forced the stop before the running requests finished."""

from __future__ import annotations

import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.support.charter_process import CHARTER, CharterProcess, charter_env, run_charter
from tests.support.live import free_port
from tests.support.reliability import open_session, prepared_data_dir

#: uvicorn's status for a server that could not start.
STARTUP_FAILURE = 3
RUN_TIMEOUT = 120.0
WAIT = 60.0

#: A tool module that imports in ``charter serve`` itself but stops every worker process it is
#: imported in, the way uvicorn stops a worker whose start fails.
FAILS_IN_WORKERS = """
import multiprocessing
import sys

from resourceserver.mcp import Registry

if multiprocessing.parent_process() is not None:
    sys.exit(3)
registry = Registry()
"""

#: A tool that never finishes by itself, so a drain cannot complete while it runs.
HOLDS_ON = """
import asyncio
from pathlib import Path

from resourceserver.mcp import Registry

registry = Registry()


@registry.tool
async def hold_on(started_marker: str) -> str:
    \"\"\"Create the file ``started_marker``, then wait (until the server is stopped).\"\"\"
    Path(started_marker).touch()
    await asyncio.sleep(3600)
    return "finished"
"""


def wait_until(condition: threading.Event | Path | tuple[CharterProcess, str], what: str) -> None:
    """Poll for an event, a file, or a line in the server's log, with a generous deadline."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if isinstance(condition, threading.Event):
            done = condition.is_set()
        elif isinstance(condition, Path):
            done = condition.exists()
        else:
            done = condition[1] in condition[0].stderr
        if done:
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
def test_drained_stop_exits_0(tmp_path: Path, sig: signal.Signals) -> None:
    with run_charter(tmp_path / "data") as charter:
        exit_code = charter.stop(sig)
    assert exit_code == 0, charter.stderr
    assert "Application shutdown complete" in charter.stderr
    assert "Traceback" not in charter.stderr, charter.stderr


def test_port_in_use_exits_non_zero(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [*CHARTER, "serve", "--port", str(port), "--data-dir", str(tmp_path / "data")],
            capture_output=True,
            text=True,
            env=charter_env(),
            timeout=RUN_TIMEOUT,
            check=False,
        )
    assert result.returncode == STARTUP_FAILURE, result.stderr
    assert "address already in use" in result.stderr.lower(), result.stderr
    assert "--port" in result.stderr
    # Said before anything claims the server is there to connect to.
    assert "Connect your MCP client" not in result.stdout


@pytest.mark.postgres
def test_worker_that_cannot_start_makes_serve_exit_non_zero(
    tmp_path: Path, postgres_url: str
) -> None:
    workdir = tmp_path / "project"
    workdir.mkdir()
    (workdir / "fails_in_workers.py").write_text(FAILS_IN_WORKERS)
    result = subprocess.run(
        [
            *CHARTER,
            "serve",
            "--port",
            str(free_port()),
            "--data-dir",
            str(tmp_path / "data"),
            "--workers",
            "2",
            "--database-url",
            postgres_url,
            "--tools",
            "fails_in_workers",
        ],
        capture_output=True,
        text=True,
        env=charter_env(),
        cwd=workdir,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    assert result.returncode == STARTUP_FAILURE, result.stderr
    assert "a worker failed to start" in result.stderr, result.stderr


def test_second_ctrl_c_forces_the_stop_and_exits_non_zero(tmp_path: Path) -> None:
    workdir = tmp_path / "project"
    workdir.mkdir()
    (workdir / "holds_on.py").write_text(HOLDS_ON)
    data_dir, client_id, secret = prepared_data_dir(
        tmp_path, f"sqlite:///{tmp_path}/data/charter.db"
    )
    marker = tmp_path / "started"
    answered = threading.Event()
    with run_charter(
        data_dir, "--tools", "holds_on", "--graceful-timeout", "600", cwd=workdir
    ) as charter:
        headers = open_session(charter, client_id, secret)

        def call() -> None:
            body = {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "tools/call",
                "params": {"name": "hold_on", "arguments": {"started_marker": str(marker)}},
            }
            try:
                httpx.post(charter.mcp_url, headers=headers, json=body, timeout=WAIT)
            except httpx.HTTPError:
                pass  # the forced stop cuts the connection
            finally:
                answered.set()

        caller = threading.Thread(target=call)
        caller.start()
        wait_until(marker, "the tool call to start")
        charter.process.send_signal(signal.SIGINT)
        # The first Ctrl+C must have been handled (a second one sent earlier could merge with it).
        wait_until((charter, "Waiting for connections to close"), "the drain to begin")
        charter.process.send_signal(signal.SIGINT)
        exit_code = charter.process.wait(timeout=WAIT)
        wait_until(answered, "the cut tool call")
        caller.join(timeout=WAIT)
    assert exit_code != 0, charter.stderr
    assert "Application shutdown complete" not in charter.stderr
