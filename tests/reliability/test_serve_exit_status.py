"""The exit status of ``charter serve`` (:mod:`authserver.clean_exit`): 0 after a drained stop on
SIGTERM or SIGINT, non-zero when the server or a worker could not start."""

from __future__ import annotations

import signal
import socket
import subprocess
from pathlib import Path

import pytest

from tests.e2e.charter_process import CHARTER, charter_env, run_charter
from tests.support.live import free_port

#: uvicorn's status for a server that could not start.
STARTUP_FAILURE = 3
RUN_TIMEOUT = 120.0

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
