"""Reaping never-used dynamic clients after the TTL (S48) and expired metadata documents."""

from __future__ import annotations

from collections.abc import Callable

from authserver.clients.metadata_documents import STALE_GRACE_SECONDS
from authserver.context import AuthServer
from authserver.ops.reaper import purge_expired_metadata_documents, reap_unused_clients
from authserver.storage.models import Client
from tests.support.factories import create_client

DAY = 86400


def ids(server: AuthServer) -> set[str]:
    with server.database.transaction() as session:
        return {client.client_id for client in session.query(Client).all()}


def test_s48_never_used_clients_reaped_after_ttl(make_server: Callable[..., AuthServer]) -> None:
    now = [1_800_000_000.0]
    server = make_server(clock=lambda: now[0], unused_client_ttl=DAY)
    for index in range(7):
        create_client(server, client_id=f"old-{index}", kind="dynamic")
    used, _ = create_client(server, client_id="old-used", kind="dynamic")
    static, _ = create_client(server, client_id="old-static", kind="static")
    with server.database.transaction() as session:
        row = session.get(Client, "old-used")
        assert row is not None
        row.last_used_at = int(now[0]) + 10
    now[0] += DAY - 10
    create_client(server, client_id="young", kind="dynamic")
    assert reap_unused_clients(server) == 0
    now[0] += 20
    assert reap_unused_clients(server, batch_size=3) == 7
    assert ids(server) == {"old-used", "old-static", "young"}
    now[0] += DAY
    assert reap_unused_clients(server) == 1
    assert ids(server) == {"old-used", "old-static"}
    assert used.client_id in ids(server) and static.client_id in ids(server)


def test_expired_metadata_documents_purged(make_server: Callable[..., AuthServer]) -> None:
    now = [1_800_000_000.0]
    server = make_server(clock=lambda: now[0])
    create_client(server, client_id="https://a.example/c.json", kind="metadata_document")
    create_client(server, client_id="https://b.example/c.json", kind="metadata_document")
    with server.database.transaction() as session:
        for client_id, expires in (
            ("https://a.example/c.json", 100),
            ("https://b.example/c.json", 10_000),
        ):
            row = session.get(Client, client_id)
            assert row is not None
            row.expires_at = int(now[0]) + expires
    now[0] += 200
    assert purge_expired_metadata_documents(server) == 0  # stale, but still within its grace
    now[0] += STALE_GRACE_SECONDS
    assert purge_expired_metadata_documents(server) == 1
    assert ids(server) == {"https://b.example/c.json"}
