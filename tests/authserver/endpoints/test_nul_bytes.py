"""S102: a NUL byte in any parameter is bad input, refused alike on SQLite and PostgreSQL.

PostgreSQL cannot store or even compare a text value holding U+0000; before the fix such values
reached SQL and answered 503 (a logged database error) there, 400/401 on SQLite. Every vector
here must get the same clean answer on both databases, before any SQL: the token endpoint's
form and Basic credentials, ``/authorize`` parameters (``client_id``, ``state``, …),
registration metadata (``client_name``), the sign-in form, and the notes tools' arguments.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from authserver.context import AuthServer
from authserver.deployment import build_deployment
from tests.support.browser_flow import authorize_params, pkce_pair
from tests.support.codes import code_form, create_code
from tests.support.factories import create_client, create_user
from tests.support.mcp_harness import McpHttp

NUL = "\x00"
REDIRECT = "http://127.0.0.1/callback"


@pytest.fixture
def quiet_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.WARNING)
    return caplog


def assert_no_database_error(caplog: pytest.LogCaptureFixture) -> None:
    text = caplog.text.lower()
    assert "database error" not in text and "nul" not in text, caplog.text


async def test_s102_nul_in_token_request_is_invalid_request(
    auth_server: AuthServer, as_client: httpx.AsyncClient, quiet_logs: pytest.LogCaptureFixture
) -> None:
    client, _ = create_client(auth_server)
    user = create_user(auth_server)
    issued = create_code(auth_server, client_id=client.client_id, subject=user.id)
    for field in ("client_id", "code", "redirect_uri", "code_verifier", "grant_type"):
        form = code_form(issued)
        form[field] = form[field] + NUL
        response = await as_client.post("/token", data=form)
        assert response.status_code == 400, (field, response.text)
        assert response.json()["error"] == "invalid_request", field
    refresh = {"grant_type": "refresh_token", "refresh_token": "r" + NUL, "client_id": "x" + NUL}
    response = await as_client.post("/token", data=refresh)
    assert (response.status_code, response.json()["error"]) == (400, "invalid_request")
    # The code was never touched: it still redeems.
    assert (await as_client.post("/token", data=code_form(issued))).status_code == 200
    assert_no_database_error(quiet_logs)


async def test_s102_nul_in_basic_credentials_is_invalid_client(
    auth_server: AuthServer, as_client: httpx.AsyncClient, quiet_logs: pytest.LogCaptureFixture
) -> None:
    raw = base64.b64encode(f"bad{NUL}client:secret".encode()).decode()
    for path, form in (
        ("/token", {"grant_type": "client_credentials"}),
        ("/revoke", {"token": "abc"}),
        ("/introspect", {"token": "abc"}),
    ):
        response = await as_client.post(path, data=form, headers={"Authorization": f"Basic {raw}"})
        assert response.status_code == 401, (path, response.text)
        assert response.json()["error"] == "invalid_client", path
    assert_no_database_error(quiet_logs)


async def test_s102_nul_in_authorize_parameters_is_refused(
    auth_server: AuthServer, as_client: httpx.AsyncClient, quiet_logs: pytest.LogCaptureFixture
) -> None:
    client, _ = create_client(auth_server)
    params = authorize_params(client.client_id, REDIRECT, pkce_pair()[1])
    # A client_id or redirect_uri that cannot be trusted: an error page, no redirect.
    for field in ("client_id", "redirect_uri"):
        response = await as_client.get("/authorize", params={**params, field: params[field] + NUL})
        assert response.status_code == 400, (field, response.text)
        assert "location" not in response.headers
    # Any other parameter: the error goes back to the client, without the bad value.
    for field in ("state", "scope", "resource", "code_challenge", "response_type", "prompt"):
        response = await as_client.get("/authorize", params={**params, field: f"x{NUL}y"})
        assert response.status_code in (302, 303), (field, response.text)
        location = httpx.URL(response.headers["location"])
        assert location.params["error"] == "invalid_request", field
        assert NUL not in str(location) and "%00" not in str(location), field
    assert_no_database_error(quiet_logs)


async def test_s102_nul_in_registration_metadata_is_invalid_client_metadata(
    as_client: httpx.AsyncClient, quiet_logs: pytest.LogCaptureFixture
) -> None:
    metadata = {"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"}
    for extra in (
        {"client_name": f"Evil{NUL}App"},
        {"client_uri": f"https://app.example.com/{NUL}"},
        {"redirect_uris": [REDIRECT + NUL]},
        {"software_id": NUL},
        {"contacts": [f"a{NUL}@example.com"]},
    ):
        response = await as_client.post("/register", json={**metadata, **extra})
        assert response.status_code == 400, (extra, response.text)
        assert response.json()["error"] in ("invalid_client_metadata", "invalid_redirect_uri")
    assert_no_database_error(quiet_logs)


async def test_s102_nul_in_sign_in_form_is_refused(
    auth_server: AuthServer, as_client: httpx.AsyncClient, quiet_logs: pytest.LogCaptureFixture
) -> None:
    client, _ = create_client(auth_server)
    create_user(auth_server)
    params = authorize_params(client.client_id, REDIRECT, pkce_pair()[1])
    page = await as_client.get("/authorize", params=params)
    assert page.status_code == 200
    for fields in (
        {"request_id": NUL, "csrf_token": "x", "username": "alice", "password": "p"},
        {"request_id": "r", "csrf_token": NUL, "username": "alice", "password": "p"},
    ):
        response = await as_client.post("/authorize/login", data=fields)
        assert response.status_code == 400, (fields, response.text)
    assert_no_database_error(quiet_logs)


async def test_s102_nul_in_notes_tool_arguments_is_a_tool_error(
    make_server: Callable[..., AuthServer],
    tmp_path: Path,
    quiet_logs: pytest.LogCaptureFixture,
) -> None:
    server = make_server()
    deployment = build_deployment(server.settings, server=server)
    client, _ = create_client(server)
    user = create_user(server)
    scope = "mcp notes:read notes:write"
    issued = create_code(server, client_id=client.client_id, subject=user.id, scope=scope)
    transport = httpx.ASGITransport(app=deployment.app)
    async with (
        deployment.app.router.lifespan_context(deployment.app),
        httpx.AsyncClient(transport=transport, base_url=server.settings.issuer) as http,
    ):
        token = (await http.post("/token", data=code_form(issued))).json()["access_token"]
        mcp = McpHttp(http, "/mcp", token)
        await mcp.initialize()
        answers: list[Any] = []
        for arguments in ({"title": f"a{NUL}b"}, {"title": "ok", "body": f"x{NUL}"}):
            final = await mcp.call("tools/call", {"name": "notes_add", "arguments": arguments})
            answers.append(final.get("result", final.get("error")))
        listed = await mcp.call("tools/call", {"name": "notes_list", "arguments": {}})
    for answer in answers:
        assert answer.get("isError") is True or answer.get("code") == -32602, answer
    assert listed["result"]["structuredContent"]["total"] == 0
    assert_no_database_error(quiet_logs)
