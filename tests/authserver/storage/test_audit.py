"""The audit trail: each event stored once with the request's client address and request id,
sent to the JSON-lines sink only once committed, and purged after the retention time."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from authserver.context import AuthServer
from authserver.deployment import build_deployment
from authserver.ops.purge import purge_expired
from authserver.storage.audit import record_event
from authserver.storage.models import AuditEvent
from tests.support.clock import Clock


def sink_lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def test_events_carry_the_client_address_and_request_id(
    make_server: Callable[..., AuthServer], tmp_path: Path
) -> None:
    sink = tmp_path / "audit.jsonl"
    server = make_server(audit_log_file=str(sink))
    app = build_deployment(server.settings, server=server).app
    transport = httpx.ASGITransport(app=app, client=("192.0.2.7", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as http:
        response = await http.post(
            "/register",
            json={"redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "none"},
            headers={"X-Request-ID": "req-audit-1"},
        )
    assert response.status_code == 201, response.text
    with server.database.transaction() as session:
        rows = session.scalars(select(AuditEvent)).all()
    assert [(row.event, row.ip, row.request_id) for row in rows] == [
        ("client_registered", "192.0.2.7", "req-audit-1")
    ]
    [line] = sink_lines(sink)
    assert line["event"] == "client_registered"
    assert line["request_id"] == "req-audit-1"
    assert line["ip"] == "192.0.2.7"
    assert line["client_id"] == response.json()["client_id"]


def test_sink_gets_committed_events_only(
    make_server: Callable[..., AuthServer], tmp_path: Path
) -> None:
    sink = tmp_path / "logs" / "audit.jsonl"
    server = make_server(audit_log_file=str(sink))
    with pytest.raises(RuntimeError), server.database.transaction() as session:
        record_event(session, "rolled_back", at=server.now())
        raise RuntimeError("the work failed")
    assert sink_lines(sink) == []
    with server.database.transaction() as session:
        record_event(session, "kept", at=server.now(), subject="u1", reason="test")
        record_event(session, "kept_too", at=server.now())
    lines = sink_lines(sink)
    assert [line["event"] for line in lines] == ["kept", "kept_too"]
    assert lines[0]["detail"] == {"reason": "test"}
    assert lines[0]["ip"] is None  # outside a request
    with server.database.transaction() as session:
        assert sorted(session.scalars(select(AuditEvent.event))) == ["kept", "kept_too"]


@pytest.mark.parametrize("retention", [3600, 0])
def test_housekeeping_purges_events_past_the_retention(
    make_server: Callable[..., AuthServer], retention: int
) -> None:
    clock = Clock()
    server = make_server(clock=clock, audit_retention_seconds=retention)
    with server.database.transaction() as session:
        record_event(session, "old", at=server.now() - 7200)
        record_event(session, "recent", at=server.now() - 60)
    counts = purge_expired(server)
    with server.database.transaction() as session:
        left = sorted(session.scalars(select(AuditEvent.event)))
    if retention:
        assert counts["audit_events"] == 1
        assert left == ["recent"]
    else:  # 0 keeps everything
        assert "audit_events" not in counts
        assert left == ["old", "recent"]
