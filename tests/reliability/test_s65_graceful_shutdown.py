"""S65: graceful shutdown of ``charter serve`` — on SIGTERM an in-flight MCP request finishes,
SSE streams (a standalone GET stream and a POST answered as a stream) end cleanly, and the
process exits 0 within a bound (MCP 2025-11-25 "Transports" §Streamable HTTP); one process on
SQLite, and two workers on PostgreSQL behind uvicorn's supervisor.
"""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.charter_process import run_charter
from tests.support.reliability import open_session, prepared_data_dir

TOOL_SECONDS = 2.0
EXIT_BOUND = 40.0
WAIT = 60.0


@dataclass
class StreamOutcome:
    """What one streamed response delivered and how it ended."""

    lines: list[str] = field(default_factory=list)
    status: int | None = None
    error: BaseException | None = None
    first_event: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)


def read_stream(
    url: str, method: str, headers: dict[str, str], body: dict[str, Any] | None, into: StreamOutcome
) -> None:
    """Read a response line by line until the server ends it; record errors instead of raising."""
    try:
        with (
            httpx.Client(timeout=httpx.Timeout(WAIT)) as http,
            http.stream(method, url, headers=headers, json=body) as response,
        ):
            into.status = response.status_code
            for line in response.iter_lines():
                into.lines.append(line)
                if line.startswith("id:"):
                    into.first_event.set()
    except BaseException as exc:  # recorded and asserted by the test
        into.error = exc
    finally:
        into.first_event.set()
        into.done.set()


@dataclass(frozen=True)
class Deployment:
    """How ``charter serve`` runs: its database and its extra options."""

    database_url: str
    options: tuple[str, ...]


@pytest.fixture(params=["one-process", pytest.param("two-workers", marks=pytest.mark.postgres)])
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Deployment:
    """One process on a SQLite file, or two workers on a scratch PostgreSQL database."""
    if request.param == "one-process":
        return Deployment(f"sqlite:///{tmp_path / 'data' / 'charter.db'}", ())
    url: str = request.getfixturevalue("postgres_url")
    return Deployment(url, ("--workers", "2", "--database-url", url))


def tool_call(request_id: int, marker: Path, *, progress: bool) -> dict[str, Any]:
    params: dict[str, Any] = {
        "name": "slow_echo",
        "arguments": {
            "text": f"done-{request_id}",
            "seconds": TOOL_SECONDS,
            "started_marker": str(marker),
        },
    }
    if progress:
        params["_meta"] = {"progressToken": f"p{request_id}"}
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}


def wait_for(condition: threading.Event | Path, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if condition.is_set() if isinstance(condition, threading.Event) else condition.exists():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_s65_sigterm_lets_in_flight_requests_finish(tmp_path: Path, deployment: Deployment) -> None:
    data_dir, client_id, secret = prepared_data_dir(tmp_path, deployment.database_url)
    with run_charter(
        data_dir,
        "--tools",
        "tests.support.slow_tools",
        "--graceful-timeout",
        "20",
        *deployment.options,
    ) as charter:
        headers = open_session(charter, client_id, secret)
        standalone = StreamOutcome()
        streamed_call = StreamOutcome()
        plain_marker = tmp_path / "plain-started"
        streamed_marker = tmp_path / "streamed-started"
        plain: dict[str, httpx.Response | BaseException] = {}

        def plain_call() -> None:
            try:
                plain["response"] = httpx.post(
                    charter.mcp_url,
                    headers=headers,
                    json=tool_call(1, plain_marker, progress=False),
                    timeout=WAIT,
                )
            except BaseException as exc:  # recorded and asserted below
                plain["response"] = exc

        sse_headers = {**headers, "Accept": "text/event-stream"}
        threads = [
            threading.Thread(
                target=read_stream,
                args=(charter.mcp_url, "GET", sse_headers, None, standalone),
            ),
            threading.Thread(
                target=read_stream,
                args=(
                    charter.mcp_url,
                    "POST",
                    headers,
                    tool_call(2, streamed_marker, progress=True),
                    streamed_call,
                ),
            ),
            threading.Thread(target=plain_call),
        ]
        for thread in threads:
            thread.start()
        wait_for(standalone.first_event, "the standalone SSE stream")
        wait_for(streamed_call.first_event, "the streamed tool call")
        wait_for(plain_marker, "the plain tool call to start")
        assert not standalone.done.is_set()

        charter.process.send_signal(signal.SIGTERM)
        for thread in threads:
            thread.join(timeout=WAIT)
        exit_code = charter.process.wait(timeout=EXIT_BOUND)

    response = plain["response"]
    assert isinstance(response, httpx.Response), response
    assert response.status_code == 200, response.text
    assert response.json()["result"]["content"][0]["text"] == "done-1"
    for outcome in (standalone, streamed_call):
        assert outcome.status == 200
        assert outcome.error is None, outcome.error
        assert any(line.startswith("id:") for line in outcome.lines)
    # A completed drain exits 0 (not "killed by SIGTERM", which uvicorn alone would give).
    assert exit_code == 0, (exit_code, charter.stderr)
    # Every server process that started (a worker SIGTERMed before it began has nothing to
    # drain) completed its shutdown.
    started = charter.stderr.count("Started server process")
    assert started >= 1, charter.stderr
    assert charter.stderr.count("Application shutdown complete") == started, charter.stderr
    assert "Traceback" not in charter.stderr, charter.stderr
