"""Background housekeeping of ``charter serve``: expired rows purged and never-used dynamic
clients reaped without an operator (S48, S64)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import httpx
from sqlalchemy import func, select

from authserver.config.settings import CharterSettings
from authserver.context import AuthServer
from authserver.deployment import build_deployment, initialize
from authserver.ops.maintenance import run_maintenance
from authserver.storage.models import Client
from tests.support.clock import Clock
from tests.support.factories import create_client


def _clients(server: AuthServer) -> int:
    with server.database.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(Client)) or 0)


def test_s48_run_maintenance_reaps_never_used_dynamic_clients(
    make_server: Callable[..., AuthServer],
) -> None:
    clock = Clock()
    server = make_server(clock=clock)
    create_client(server, client_id="dcr_unused", kind="dynamic")
    create_client(server, client_id="static-kept", kind="static")
    assert run_maintenance(server)["unused_clients"] == 0
    clock.now += server.settings.unused_client_ttl + 1
    counts = run_maintenance(server)
    assert counts["unused_clients"] == 1
    assert _clients(server) == 1


async def test_s64_serve_lifespan_runs_maintenance_in_the_background(tmp_path: Path) -> None:
    settings = CharterSettings(
        data_dir=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'charter.db'}",
        key_encryption_key="test-key-encryption-secret",
        maintenance_interval_seconds=1,
        unused_client_ttl=60,
    )
    clock = Clock()
    server = AuthServer.build(settings, clock=clock)
    initialize(server, create_admin=False)
    create_client(server, client_id="dcr_unused", kind="dynamic")
    clock.now += 120
    deployment = build_deployment(settings, server=server)
    async with deployment.app.router.lifespan_context(deployment.app):
        transport = httpx.ASGITransport(app=deployment.app)
        async with httpx.AsyncClient(transport=transport, base_url=settings.issuer) as http:
            assert (await http.get("/jwks.json")).status_code == 200
        for _ in range(50):
            if _clients(server) == 0:
                break
            await asyncio.sleep(0.1)
        assert _clients(server) == 0
