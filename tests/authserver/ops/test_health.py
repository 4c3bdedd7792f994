"""``/healthz`` and ``/readyz``: liveness always, readiness only with a reachable database at
the migrations' head and a loadable signing key; neither logged at ``info``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from starlette.applications import Starlette

from authserver.context import AuthServer
from authserver.deployment import build_deployment
from authserver.ops.health import Readiness, health_routes
from authserver.storage.models import SigningKey
from authserver.storage.schema import head_revision
from tests.support.clock import Clock
from tests.support.reliability import DatabaseOutage


def health_app(server: AuthServer, **options: Any) -> Starlette:
    return Starlette(routes=health_routes(Readiness(server, cache_seconds=0, **options)))


async def get(app: Starlette, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        return await http.get(path)


async def test_ready_when_database_migrations_and_key_are_there(
    make_server: Callable[..., AuthServer],
) -> None:
    app = health_app(make_server())
    live = await get(app, "/healthz")
    assert live.status_code == 200
    assert live.json() == {"status": "ok"}
    ready = await get(app, "/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.headers["cache-control"] == "no-store"
    assert ready.json() == {
        "status": "ready",
        "checks": {"database": "ok", "migrations": "ok", "signing_key": "ok"},
    }


async def test_not_ready_while_the_database_is_down_and_ready_again_after(
    make_server: Callable[..., AuthServer],
) -> None:
    server = make_server()
    app = health_app(server)
    outage = DatabaseOutage(server.database.engine)
    try:
        outage.begin()
        down = await get(app, "/readyz")
        assert down.status_code == 503
        assert down.json()["checks"]["database"] == "unreachable"
        assert "test" not in down.text  # the driver's message is not shown
        assert (await get(app, "/healthz")).status_code == 200  # liveness does not depend on it
        outage.end()
        assert (await get(app, "/readyz")).status_code == 200
    finally:
        outage.remove()


async def test_not_ready_when_the_schema_is_behind(
    make_server: Callable[..., AuthServer],
) -> None:
    server = make_server()
    version = text("UPDATE alembic_version SET version_num = :revision")
    with server.database.engine.begin() as connection:
        connection.execute(version, {"revision": "0001"})
    try:
        response = await get(health_app(server), "/readyz")
        assert response.status_code == 503
        assert response.json()["checks"]["migrations"] == "behind"
    finally:  # the PostgreSQL database is shared by the session's tests
        with server.database.engine.begin() as connection:
            connection.execute(version, {"revision": head_revision()})


async def test_not_ready_without_a_signing_key(make_server: Callable[..., AuthServer]) -> None:
    server = make_server()
    with server.database.transaction() as session:
        session.query(SigningKey).delete()
    server.keys.invalidate_cache()
    response = await get(health_app(server), "/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["signing_key"] == "missing"


async def test_readiness_answer_is_reused_for_a_second(
    make_server: Callable[..., AuthServer],
) -> None:
    server = make_server()
    clock = Clock()
    readiness = Readiness(server, monotonic=clock)
    assert (await readiness.checks())["database"] == "ok"
    outage = DatabaseOutage(server.database.engine)
    try:
        outage.begin()
        assert (await readiness.checks())["database"] == "ok"  # cached
        assert outage.attempts == 0
        clock.advance(1.5)
        assert (await readiness.checks())["database"] == "unreachable"
    finally:
        outage.remove()


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
async def test_health_checks_are_not_logged_at_info(
    make_server: Callable[..., AuthServer], path: str, caplog: pytest.LogCaptureFixture
) -> None:
    server = make_server()
    deployment = build_deployment(server.settings, server=server)
    with caplog.at_level("INFO", logger="charter.access"):
        response = await get(deployment.app, path)
        assert response.status_code == 200
        assert not [r for r in caplog.records if r.name == "charter.access"]
        await get(deployment.app, "/jwks.json")
    assert [r.getMessage() for r in caplog.records if r.name == "charter.access"] == [
        "GET /jwks.json 200 " + caplog.records[-1].getMessage().split()[-1]
    ]
