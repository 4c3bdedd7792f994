"""Whole flows on a real socket: registration, login and consent, code, refresh, reuse,
revocation, introspection; and what the database and the logs hold afterwards (S56)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import inspect, text

from authserver.context import AuthServer
from authserver.endpoints.app import create_app
from tests.support.browser_flow import authorize_params, authorize_with_login, pkce_pair
from tests.support.clock import Clock
from tests.support.factories import create_user
from tests.support.live import serve_app

PASSWORD = "correct horse battery staple"
REDIRECT_URI = "http://127.0.0.1/callback"


@dataclass
class FlowSecrets:
    """Every secret value the flow saw, to look for afterwards."""

    values: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, value: str) -> None:
        self.values[f"{name}#{len(self.values)}"] = value


async def run_flow(server: AuthServer, clock: Clock, base_url: str) -> FlowSecrets:
    seen = FlowSecrets()
    seen.add("password", PASSWORD)
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        registered = await http.post(
            "/register",
            json={
                "client_name": "Flow client",
                "redirect_uris": [REDIRECT_URI],
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "token_endpoint_auth_method": "client_secret_basic",
            },
        )
        assert registered.status_code == 201, registered.text
        info = registered.json()
        client_id, secret = info["client_id"], info["client_secret"]
        seen.add("client_secret", secret)
        seen.add("registration_access_token", info["registration_access_token"])
        auth = (client_id, secret)

        verifier, challenge = pkce_pair()
        seen.add("code_verifier", verifier)
        location = await authorize_with_login(
            http, authorize_params(client_id, REDIRECT_URI, challenge), "alice", PASSWORD
        )
        for name, value in http.cookies.items():
            seen.add(f"cookie:{name}", value)
        assert location.params["iss"] == server.settings.issuer
        code = location.params["code"]
        seen.add("code", code)

        issued = await http.post(
            "/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": REDIRECT_URI,
                "code_verifier": verifier,
            },
            auth=auth,
        )
        assert issued.status_code == 200, issued.text
        first = issued.json()
        seen.add("access_token", first["access_token"])
        seen.add("refresh_token", first["refresh_token"])

        introspected = await http.post(
            "/introspect", data={"token": first["access_token"]}, auth=auth
        )
        assert introspected.json()["active"] is True

        refreshed = await http.post(
            "/token",
            data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
            auth=auth,
        )
        assert refreshed.status_code == 200, refreshed.text
        second = refreshed.json()
        seen.add("access_token", second["access_token"])
        seen.add("refresh_token", second["refresh_token"])
        assert (
            await http.post("/introspect", data={"token": second["access_token"]}, auth=auth)
        ).json()["active"] is True

        clock.advance(server.settings.refresh_reuse_grace_seconds + 1)
        reuse = await http.post(
            "/token",
            data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
            auth=auth,
        )
        assert reuse.status_code == 400
        assert reuse.json()["error"] == "invalid_grant"
        for token in (second["access_token"], second["refresh_token"], first["access_token"]):
            answer = await http.post("/introspect", data={"token": token}, auth=auth)
            assert answer.json() == {"active": False}
        dead = await http.post(
            "/token",
            data={"grant_type": "refresh_token", "refresh_token": second["refresh_token"]},
            auth=auth,
        )
        assert dead.json()["error"] == "invalid_grant"

        # A second authorization, then explicit revocation of its access token.
        verifier, challenge = pkce_pair()
        location = await authorize_with_login(
            http, authorize_params(client_id, REDIRECT_URI, challenge), "alice", PASSWORD
        )
        seen.add("code", location.params["code"])
        third = (
            await http.post(
                "/token",
                data={
                    "grant_type": "authorization_code",
                    "code": location.params["code"],
                    "redirect_uri": REDIRECT_URI,
                    "code_verifier": verifier,
                },
                auth=auth,
            )
        ).json()
        seen.add("access_token", third["access_token"])
        seen.add("refresh_token", third["refresh_token"])
        revoked = await http.post(
            "/revoke",
            data={"token": third["access_token"], "token_type_hint": "access_token"},
            auth=auth,
        )
        assert revoked.status_code == 200
        answer = await http.post("/introspect", data={"token": third["access_token"]}, auth=auth)
        assert answer.json() == {"active": False}
        still = await http.post("/introspect", data={"token": third["refresh_token"]}, auth=auth)
        assert still.json()["active"] is True
        assert (
            await http.post("/revoke", data={"token": third["refresh_token"]}, auth=auth)
        ).status_code == 200
        gone = await http.post("/introspect", data={"token": third["refresh_token"]}, auth=auth)
        assert gone.json() == {"active": False}
    return seen


def dump_database(server: AuthServer) -> str:
    """``SELECT *`` of every table in the database, as text."""
    engine = server.database.engine
    lines: list[str] = []
    with engine.connect() as conn:
        for table in inspect(engine).get_table_names():
            for row in conn.execute(text(f'SELECT * FROM "{table}"')):  # noqa: S608 - table names from the schema
                lines.append(f"{table}: {tuple(row)!r}")
        conn.rollback()
    return "\n".join(lines)


@pytest.fixture
def flow_server(make_server: Any) -> tuple[AuthServer, Clock]:
    clock = Clock(time.time())
    server: AuthServer = make_server(clock=clock)
    create_user(server, "alice", PASSWORD)
    return server, clock


async def test_whole_flow_code_refresh_reuse_revoke_introspect(
    flow_server: tuple[AuthServer, Clock],
) -> None:
    server, clock = flow_server
    with serve_app(create_app(server)) as base_url:
        await run_flow(server, clock, base_url)


async def test_s56_database_dump_and_logs_hold_no_usable_secret(
    flow_server: tuple[AuthServer, Clock], caplog: pytest.LogCaptureFixture
) -> None:
    server, clock = flow_server
    caplog.set_level(logging.DEBUG)
    with serve_app(create_app(server)) as base_url:
        seen = await run_flow(server, clock, base_url)
    dump = dump_database(server)
    assert "oauth_clients" in dump and "refresh_tokens" in dump and "access_tokens" in dump
    for name, value in seen.values.items():
        assert len(value) >= 16, name
        assert value not in dump, f"{name} is stored in plain text"
    # JWT access tokens: neither the token nor its signature is stored (only the jti).
    for name, value in seen.values.items():
        if name.startswith("access_token"):
            assert value.rsplit(".", 1)[1] not in dump
    server_logs = "\n".join(
        f"{record.name} {record.getMessage()} {record.args!r}"
        for record in caplog.records
        if not record.name.startswith(("httpx", "httpcore"))
    )
    assert "refresh_reuse_detected" in server_logs  # the capture does see the server's logs
    assert "Basic " not in server_logs and "authorization:" not in server_logs.lower()
    for name, value in seen.values.items():
        assert value not in server_logs, f"{name} appears in the logs"
