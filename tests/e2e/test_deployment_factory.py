"""The composition root in-process: the worker factory, the user tool modules, the drain hook."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import httpx
import pytest

from authserver.config.settings import CharterSettings
from authserver.context import AuthServer
from authserver.deployment import (
    build_deployment,
    create_deployment_app,
    initialize,
)

ISSUER = "http://127.0.0.1:8123"


@pytest.fixture
def charter_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    for key in list(os.environ):
        if key.startswith("CHARTER_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("CHARTER_ISSUER", ISSUER)
    monkeypatch.setenv("CHARTER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CHARTER_TOOLS", '["tests.conformance.tools"]')
    yield tmp_path / "data"


def test_settings_read_tool_modules_from_the_environment(
    charter_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert CharterSettings().tools == ("tests.conformance.tools",)
    monkeypatch.setenv("CHARTER_TOOLS", "a.b c.d,e.f")
    assert CharterSettings().tools == ("a.b", "c.d", "e.f")
    assert CharterSettings(tools="a.b, c.d").tools == ("a.b", "c.d")  # type: ignore[arg-type]


async def test_worker_factory_serves_both_servers_on_one_origin(charter_env: Path) -> None:
    app = create_deployment_app()
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as http:
            metadata = await http.get("/.well-known/oauth-authorization-server")
            jwks = await http.get("/jwks.json")
            resource = await http.get("/.well-known/oauth-protected-resource/mcp")
            mcp = await http.post("/mcp", json={})
    assert metadata.json()["issuer"] == ISSUER
    assert len(jwks.json()["keys"]) == 1  # the factory migrates and makes a key
    assert resource.json()["authorization_servers"] == [ISSUER]
    assert mcp.status_code == 401
    assert mcp.headers["x-request-id"]
    assert (charter_env / "charter.db").exists()


def test_user_tool_modules_join_the_builtin_tools(charter_env: Path) -> None:
    settings = CharterSettings()
    server = AuthServer.build(settings)
    try:
        first = initialize(server)
        again = initialize(server)
        deployment = build_deployment(settings, server=server)
    finally:
        server.database.dispose()
    assert first.admin_username == "admin" and first.admin_password
    assert first.created_signing_key
    assert again.admin_password is None and not again.created_signing_key
    assert {"whoami", "notes_add", "test_simple_text", "test_sampling"} <= set(
        deployment.registry.tools
    )
    assert deployment.resource_settings.resource_url == f"{ISSUER}/mcp"


async def test_sigterm_ends_sse_streams_then_reaches_the_previous_handler(
    charter_env: Path,
) -> None:
    settings = CharterSettings()
    server = AuthServer.build(settings)
    initialize(server, create_admin=False)
    deployment = build_deployment(settings, server=server, drain_on_signals=True)
    endpoint = deployment.resource_app.state.mcp_endpoint
    received: list[int] = []

    def previous(sig: int, _frame: FrameType | None) -> None:
        received.append(sig)

    original = signal.signal(signal.SIGTERM, previous)
    try:
        async with deployment.app.router.lifespan_context(deployment.app):
            assert not endpoint.stopping.is_set()
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(100):
                if endpoint.stopping.is_set():
                    break
                await asyncio.sleep(0.01)
            assert endpoint.stopping.is_set()
            assert received == [signal.SIGTERM]
        assert signal.getsignal(signal.SIGTERM) is previous  # restored on shutdown
    finally:
        signal.signal(signal.SIGTERM, original)


def test_a_transport_option_from_the_environment_reaches_the_mcp_endpoint(
    charter_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CHARTER_CLIENT_ANSWER_TIMEOUT is declared once, in the settings model, and still sets
    how long the running endpoint waits for a sampling or elicitation answer."""
    monkeypatch.setenv("CHARTER_CLIENT_ANSWER_TIMEOUT", "900")
    settings = CharterSettings()
    server = AuthServer.build(settings)
    try:
        initialize(server, create_admin=False)
        deployment = build_deployment(settings, server=server)
    finally:
        server.database.dispose()
    endpoint = deployment.resource_app.state.mcp_endpoint
    assert endpoint.options.client_answer_timeout == 900
    assert endpoint.pending.timeout == 900
