"""Reliability under parallel requests over a real socket (S57, S58).

Each test runs on SQLite and, with ``CHARTER_TEST_POSTGRES_URL``, on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections import Counter

import httpx
import pytest
from sqlalchemy import select

from authserver.context import AuthServer
from authserver.endpoints.app import create_app
from authserver.storage.models import Grant
from tests.support.codes import code_form, create_code, refresh_form
from tests.support.factories import create_client, create_user
from tests.support.live import serve_app

PARALLEL = 50


def outcome(response: httpx.Response) -> str:
    if response.status_code == 200:
        return "ok"
    return f"{response.status_code}:{response.json().get('error')}"


async def burst(base_url: str, forms: list[dict[str, str]]) -> list[httpx.Response]:
    """POST every form at once, each on its own connection."""
    limits = httpx.Limits(max_connections=PARALLEL, max_keepalive_connections=PARALLEL)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as http:
        return list(await asyncio.gather(*(http.post("/token", data=form) for form in forms)))


async def test_s57_parallel_code_redemptions_give_exactly_one_success(
    auth_server: AuthServer,
) -> None:
    client, _ = create_client(auth_server)
    user = create_user(auth_server)
    issued = create_code(auth_server, client_id=client.client_id, subject=user.id)
    with serve_app(create_app(auth_server)) as base_url:
        responses = await burst(base_url, [code_form(issued)] * PARALLEL)
    counts = Counter(outcome(response) for response in responses)
    assert counts == {"ok": 1, "400:invalid_grant": PARALLEL - 1}, counts
    # Every loser is a replay of a redeemed code (S15): the grant it began is revoked.
    with auth_server.database.transaction() as session:
        grant = session.scalars(select(Grant)).one()
        assert grant.revoked_reason == "code_replay"


async def test_s57_parallel_refreshes_give_exactly_one_success(auth_server: AuthServer) -> None:
    client, _ = create_client(auth_server)
    user = create_user(auth_server)
    issued = create_code(auth_server, client_id=client.client_id, subject=user.id)
    with serve_app(create_app(auth_server)) as base_url:
        async with httpx.AsyncClient(base_url=base_url) as http:
            first = await http.post("/token", data=code_form(issued))
            assert first.status_code == 200
        refresh_token = first.json()["refresh_token"]
        responses = await burst(
            base_url, [refresh_form(refresh_token, client.client_id)] * PARALLEL
        )
        counts = Counter(outcome(response) for response in responses)
        assert counts == {"ok": 1, "400:invalid_grant": PARALLEL - 1}, counts
        # The losers came within the reuse grace window: the grant survives and the winner's
        # new refresh token works.
        winner = next(response for response in responses if response.status_code == 200)
        async with httpx.AsyncClient(base_url=base_url) as http:
            again = await http.post(
                "/token", data=refresh_form(winner.json()["refresh_token"], client.client_id)
            )
        assert again.status_code == 200, again.text


async def test_s58_parallel_write_burst_has_no_database_locked(
    auth_server: AuthServer, caplog: pytest.LogCaptureFixture
) -> None:
    clients = [
        create_client(auth_server, confidential=True, grant_types=["client_credentials"])
        for _ in range(5)
    ]
    forms = [{"grant_type": "client_credentials"} for _ in range(PARALLEL)]
    caplog.set_level(logging.WARNING)
    with serve_app(create_app(auth_server)) as base_url:
        limits = httpx.Limits(max_connections=PARALLEL)
        async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as http:
            requests = []
            for index, form in enumerate(forms):
                client, secret = clients[index % len(clients)]
                raw = base64.b64encode(f"{client.client_id}:{secret}".encode()).decode()
                requests.append(
                    http.post("/token", data=form, headers={"Authorization": f"Basic {raw}"})
                )
            # Wrong secrets (of another client id) write rate counters in the same burst.
            for _ in range(10):
                requests.append(
                    http.post(
                        "/token",
                        data={"grant_type": "client_credentials"},
                        auth=("unknown-client", "wrong"),
                    )
                )
            responses = await asyncio.gather(*requests)
    counts = Counter(outcome(response) for response in responses)
    assert counts["ok"] == PARALLEL, counts
    assert counts["401:invalid_client"] == 10, counts
    assert "locked" not in caplog.text.lower()
    assert "database error" not in caplog.text


async def test_s20_parallel_wrong_secrets_for_a_new_client_id_never_500(
    auth_server: AuthServer,
) -> None:
    """The first failures of a client id race to create its rate counter: no 500/503."""
    forms = [{"grant_type": "client_credentials"} for _ in range(PARALLEL)]
    limits = httpx.Limits(max_connections=PARALLEL)
    with serve_app(create_app(auth_server)) as base_url:
        async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as http:
            responses = await asyncio.gather(
                *(http.post("/token", data=form, auth=("fresh-id", "wrong")) for form in forms)
            )
    counts = Counter(outcome(response) for response in responses)
    assert set(counts) <= {"401:invalid_client", "429:slow_down"}, counts
    assert counts["401:invalid_client"] >= auth_server.settings.failed_auth_limit, counts
