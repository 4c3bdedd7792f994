"""``charter serve`` exports spans over OTLP/HTTP when the ``OTEL_*`` variables ask for it (one
process on SQLite, and two workers on PostgreSQL, each with its own tracer provider), to a
receiver the test serves; without OpenTelemetry importable it serves exactly as before."""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.charter_process import charter_env, run_charter
from tests.support.otlp_receiver import OtlpReceiver, otlp_receiver
from tests.support.reliability import open_session, prepared_data_dir

pytestmark = pytest.mark.e2e

#: ``charter`` in a Python where ``import opentelemetry…`` fails, as without the extra.
CHARTER_WITHOUT_OTEL = [
    sys.executable,
    "-c",
    "import sys; sys.modules['opentelemetry'] = None\nfrom authserver.cli.main import main; main()",
]


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with otlp_receiver() as running:
        yield running


def otel_env(receiver: OtlpReceiver, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in charter_env().items() if not k.startswith("OTEL_")}
    env.update(
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
        OTEL_BSP_SCHEDULE_DELAY="100",
        **extra,
    )
    return env


def traceparent() -> tuple[str, int, int]:
    trace_id, span_id = secrets.randbits(128) | 1, secrets.randbits(64) | 1
    return f"00-{trace_id:032x}-{span_id:016x}-01", trace_id, span_id


def whoami(mcp_url: str, headers: dict[str, str], meta: dict[str, str]) -> None:
    response = httpx.post(
        mcp_url,
        headers=headers,
        json={
            "jsonrpc": "2.0",
            "id": 5,
            "method": "tools/call",
            "params": {"name": "whoami", "arguments": {}, "_meta": meta},
        },
        timeout=30,
    )
    assert response.status_code == 200, response.text
    assert response.json()["result"]["isError"] is False


@pytest.fixture(params=["one-process", pytest.param("two-workers", marks=pytest.mark.postgres)])
def serve_options(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, tuple[str, ...]]:
    """The database and options of ``charter serve``: SQLite alone, or PostgreSQL and 2 workers."""
    if request.param == "one-process":
        return f"sqlite:///{tmp_path / 'data' / 'charter.db'}", ()
    url: str = request.getfixturevalue("postgres_url")
    return url, ("--workers", "2", "--database-url", url)


def test_tracing_otlp_export_of_charter_serve(
    tmp_path: Path, receiver: OtlpReceiver, serve_options: tuple[str, tuple[str, ...]]
) -> None:
    database_url, options = serve_options
    data_dir, client_id, secret = prepared_data_dir(tmp_path, database_url)
    with run_charter(data_dir, *options, env=otel_env(receiver)) as charter:
        in_header, header_trace, header_span = traceparent()
        metadata = httpx.get(
            charter.base_url + "/.well-known/oauth-authorization-server",
            headers={"traceparent": in_header},
        )
        assert metadata.status_code == 200
        headers = open_session(charter, client_id, secret)
        in_meta, meta_trace, meta_span = traceparent()
        whoami(charter.mcp_url, headers, {"traceparent": in_meta})

        tools = receiver.wait_for("tools/call whoami")
        http = [
            span
            for span in receiver.wait_for("GET /.well-known/oauth-authorization-server")
            if span.trace_id == header_trace
        ]
        receiver.wait_for("oauth token")
    assert len(tools) == 1 and len(http) == 1
    assert (tools[0].trace_id, tools[0].parent_span_id) == (meta_trace, meta_span)
    assert http[0].parent_span_id == header_span
    assert http[0].attributes()["http.response.status_code"] == 200
    assert {span.service_name for span in receiver.spans()} == {"charter"}


def test_tracing_service_name_comes_from_otel_service_name(
    tmp_path: Path, receiver: OtlpReceiver
) -> None:
    env = otel_env(receiver, OTEL_SERVICE_NAME="charter-eu-1")
    with run_charter(tmp_path / "data", env=env) as charter:
        assert httpx.get(charter.base_url + "/healthz").status_code == 200
        receiver.wait_for("GET /healthz")
    assert {span.service_name for span in receiver.spans()} == {"charter-eu-1"}


def test_tracing_without_the_extra_charter_serves_as_before(
    tmp_path: Path, receiver: OtlpReceiver
) -> None:
    database_url = f"sqlite:///{tmp_path / 'data' / 'charter.db'}"
    data_dir, client_id, secret = prepared_data_dir(tmp_path, database_url)
    with run_charter(data_dir, env=otel_env(receiver), program=CHARTER_WITHOUT_OTEL) as charter:
        headers = open_session(charter, client_id, secret)
        whoami(charter.mcp_url, headers, {"traceparent": traceparent()[0]})
        time.sleep(1.5)  # spans would have been sent after 0.1 s
        stderr = charter.stderr
    assert receiver.spans() == []
    assert "pip install 'charter-mcp[otel]'" in stderr
    assert "Traceback" not in stderr


def test_tracing_off_imports_nothing_of_opentelemetry(tmp_path: Path) -> None:
    """Without ``OTEL_*`` variables a deployment is built and answers a request without
    importing OpenTelemetry at all (even though it is installed here)."""
    script = """
import sys, httpx, asyncio
from authserver.deployment import create_deployment_app
app = create_deployment_app()
async def main():
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as c:
        answer = await c.post("/token", data={"grant_type": "client_credentials"})
        assert answer.status_code in (400, 401), answer.text
asyncio.run(main())
loaded = sorted(name for name in sys.modules if name.startswith("opentelemetry"))
print("loaded:", loaded)
"""
    env = {k: v for k, v in charter_env().items() if not k.startswith("OTEL_")}
    env.update(
        CHARTER_DATA_DIR=str(tmp_path / "data"),
        CHARTER_ISSUER="http://127.0.0.1:8000",
        CHARTER_DATABASE_URL=f"sqlite:///{tmp_path / 'charter.db'}",
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "loaded: []" in done.stdout, done.stdout
