"""Charter as the benchmarks run it: ``charter serve`` on a scratch database, a real token.

A deployment is a scratch database (SQLite file or a PostgreSQL database made for the run),
migrated and given a signing key by the project's own code, with a confidential
``client_credentials`` client seeded for the MCP load. The server under test is the installed
``charter serve`` command (from the interpreter's own ``bin/``), with the benchmark's tool
module ``bench._echo_tools``. Its bearer token comes from its own token endpoint (RFC 6749
§4.4 client credentials, ``client_secret_post``), its MCP session from ``initialize`` +
``notifications/initialized`` (MCP 2025-11-25 "Lifecycle"). Whether the build speaks the
stateless revision is asked with ``server/discover`` carrying the per-request ``_meta``
fields (MCP 2026-07-28 "server/discover", "Versioning"): any answer but a result means no.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from authserver.context import AuthServer
from bench import _seed
from bench._harness import KEY_SECRET, ROOT, ready_server, scratch_database
from bench._procs import BenchError, Server, free_port, http_ready, run_server

CLIENT_SECRET = "bench-client-secret-0123456789abcdef"
LEGACY_VERSION = "2025-11-25"
STATELESS_VERSION = "2026-07-28"
ACCEPT = "application/json, text/event-stream"
ECHO_TEXT = "hello bench"
TOOLS_MODULE = "bench._echo_tools"


def charter_command() -> Path:
    """The ``charter`` script next to the running interpreter (the repository's venv)."""
    script = Path(sys.executable).parent / "charter"
    if not script.exists():
        raise BenchError(
            f"{script} is missing: run the harness with the project's venv "
            "(`.venv/bin/python -m bench.run`) after `pip install -e .`"
        )
    return script


@dataclass
class Deployment:
    """A scratch database ready for ``charter serve`` on ``port``, with a seeded client."""

    backend: str
    database_url: str
    data_dir: Path
    port: int
    context: AuthServer
    client_id: str

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextmanager
def deployment(backend: str) -> Iterator[Deployment]:
    """A fresh database on ``backend`` (``sqlite``/``postgres``), dropped afterwards."""
    with scratch_database(backend) as (database_url, data_dir):
        port = free_port()
        context = ready_server(database_url, data_dir, issuer=f"http://127.0.0.1:{port}")
        try:
            [client_id] = _seed.confidential_clients(context, 1, CLIENT_SECRET)
            yield Deployment(backend, database_url, data_dir, port, context, client_id)
        finally:
            context.database.dispose()


def serve_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of ``charter serve``: the key secret the seeding used, plus ``extra``.

    ``PYTHONPATH`` starts with this checkout: the venv's editable install may point at another
    one (a git worktree), and the code measured must be the code of the harness's checkout.
    """
    path = os.environ.get("PYTHONPATH")
    env = {
        "CHARTER_KEY_ENCRYPTION_KEY": KEY_SECRET,
        "CHARTER_TOOLS": "",
        "PYTHONPATH": f"{ROOT}{os.pathsep}{path}" if path else str(ROOT),
    }
    env.update(extra or {})
    return env


def serve_command(target: Deployment, *, workers: int = 1) -> list[str]:
    """``charter serve`` for ``target``."""
    return [
        str(charter_command()),
        "--database-url",
        target.database_url,
        "--data-dir",
        str(target.data_dir),
        "serve",
        "--port",
        str(target.port),
        "--tools",
        TOOLS_MODULE,
        "--workers",
        str(workers),
    ]


@contextmanager
def charter_server(
    target: Deployment,
    log_dir: Path,
    *,
    name: str = "charter",
    workers: int = 1,
    cpus: str | None = "0",
    env: Mapping[str, str] | None = None,
    command_prefix: tuple[str, ...] = (),
) -> Iterator[Server]:
    """Run ``charter serve`` on ``target`` (pinned to ``cpus``) until the block ends."""
    args = serve_command(target, workers=workers)
    command = [*command_prefix, *args[1:]] if command_prefix else args
    probe = http_ready(f"{target.issuer}/.well-known/oauth-authorization-server")
    with run_server(
        name,
        command,
        port=target.port,
        ready=probe,
        log_dir=log_dir,
        cwd=ROOT,
        env=serve_env(env),
        cpus=cpus,
    ) as server:
        yield server


def client_credentials_token(base_url: str, client_id: str) -> str:
    """An access token from Charter's ``/token`` (client credentials, client_secret_post)."""
    response = httpx.post(
        f"{base_url}/token",
        data=_seed.credentials_form(client_id, CLIENT_SECRET),
        timeout=30,
    )
    if response.status_code != 200:
        raise BenchError(f"/token answered {response.status_code}: {response.text[:300]}")
    return str(response.json()["access_token"])


def legacy_headers(token: str, session_id: str | None = None) -> dict[str, str]:
    """Headers of a 2025-11-25 request (after initialize, with the session when given)."""
    headers = {
        "Authorization": f"Bearer {token}",
        "Accept": ACCEPT,
        "Content-Type": "application/json",
        "MCP-Protocol-Version": LEGACY_VERSION,
    }
    if session_id is not None:
        headers["Mcp-Session-Id"] = session_id
    return headers


def stateless_headers(method: str, name: str | None, token: str | None) -> dict[str, str]:
    """Headers of a 2026-07-28 request (``Mcp-Method``, ``Mcp-Name`` mirror the body)."""
    headers = {
        "Accept": ACCEPT,
        "Content-Type": "application/json",
        "MCP-Protocol-Version": STATELESS_VERSION,
        "Mcp-Method": method,
    }
    if name is not None:
        headers["Mcp-Name"] = name
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def stateless_meta() -> dict[str, object]:
    """The ``_meta`` every 2026-07-28 request carries."""
    return {
        "io.modelcontextprotocol/protocolVersion": STATELESS_VERSION,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "charter-bench", "version": "1"},
    }


def echo_call(*, stateless: bool = False) -> str:
    """The JSON-RPC ``tools/call`` of ``echo`` (with ``_meta`` at 2026-07-28)."""
    params: dict[str, object] = {"name": "echo", "arguments": {"text": ECHO_TEXT}}
    if stateless:
        params["_meta"] = stateless_meta()
    return json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params})


def tools_list() -> str:
    """The JSON-RPC ``tools/list`` (2025-11-25)."""
    return json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}})


def fanout_call(kind: str, *, stateless: bool = False) -> str:
    """The ``tools/call`` of ``bench_fanout`` (``CHARTER_BENCH_FANOUT=1``): one change for
    every ``kind`` stream (``get``: a resource update, ``listen``: a tools list change)."""
    params: dict[str, object] = {"name": "bench_fanout", "arguments": {"kind": kind}}
    if stateless:
        params["_meta"] = stateless_meta()
    return json.dumps({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": params})


def open_session(base_url: str, token: str) -> str:
    """A new MCP session (initialize + notifications/initialized); its id."""
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": LEGACY_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "charter-bench", "version": "1"},
        },
    }
    with httpx.Client(base_url=base_url, timeout=30) as client:
        headers = legacy_headers(token)
        del headers["MCP-Protocol-Version"]
        response = client.post("/mcp", json=initialize, headers=headers)
        session_id = response.headers.get("mcp-session-id")
        if response.status_code != 200 or not session_id:
            raise BenchError(f"initialize answered {response.status_code}: {response.text[:300]}")
        notified = client.post(
            "/mcp",
            json={"jsonrpc": "2.0", "method": "notifications/initialized"},
            headers=legacy_headers(token, session_id),
        )
        if notified.status_code not in (200, 202):
            raise BenchError(f"notifications/initialized answered {notified.status_code}")
    return session_id


def stateless_support(base_url: str, token: str) -> tuple[bool, str]:
    """(True, "") when ``server/discover`` at 2026-07-28 gets a result; else (False, why)."""
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "server/discover",
        "params": {"_meta": stateless_meta()},
    }
    response = httpx.post(
        f"{base_url}/mcp",
        json=body,
        headers=stateless_headers("server/discover", None, token),
        timeout=30,
    )
    text = response.text
    if response.status_code == 200 and '"result"' in text and "supportedVersions" in text:
        return True, ""
    return False, f"server/discover at {STATELESS_VERSION} answered {response.status_code}"


def check_answer(
    base_url: str, path: str, headers: Mapping[str, str], body: str, expect: str
) -> None:
    """Send one request as the load will, and fail unless the answer is 200 and holds ``expect``."""
    response = httpx.post(f"{base_url}{path}", content=body, headers=dict(headers), timeout=30)
    if response.status_code != 200 or expect not in response.text or '"error"' in response.text:
        raise BenchError(
            f"{base_url}{path} answered {response.status_code} to the benchmark request: "
            f"{response.text[:400]}"
        )
