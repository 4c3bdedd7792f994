"""``charter serve`` on an empty data folder: database, key, first admin, printed MCP URL."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import httpx
import pytest
from uvicorn.config import STARTUP_FAILURE

from tests.support.browser_flow import (
    AuthorizationFlowError,
    authorize_params,
    follow_authorization,
    pkce_pair,
)
from tests.support.charter_process import CHARTER, CharterProcess, charter_env, run_charter
from tests.support.live import free_port
from tests.support.oauth_flow import register_public_client

pytestmark = pytest.mark.e2e

REDIRECT_URI = "http://127.0.0.1:9/callback"
DISCOVERY_PATHS = (
    "/.well-known/oauth-protected-resource/mcp",
    "/.well-known/oauth-protected-resource",
    "/.well-known/oauth-authorization-server",
    "/.well-known/openid-configuration",
    "/.well-known/oauth-authorization-server/mcp",
    "/.well-known/openid-configuration/mcp",
)


NEW_PASSWORD = "the admin's own password"


async def _log_in(
    running: CharterProcess, password: str, new_password: str | None = None
) -> httpx.URL:
    async with httpx.AsyncClient(base_url=running.base_url, timeout=30) as http:
        client_id = await register_public_client(http, REDIRECT_URI, "First start test")
        _verifier, challenge = pkce_pair()
        params = authorize_params(
            client_id, REDIRECT_URI, challenge, scope="mcp", resource=running.mcp_url
        )
        url = http.base_url.join("/authorize").copy_merge_params(params)
        return await follow_authorization(http, url, "admin", password, new_password=new_password)


def _serve_refused(data_dir: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """Run ``charter serve`` with ``options``; it must refuse to start (exit status 2)."""
    result = subprocess.run(
        [*CHARTER, "serve", "--data-dir", str(data_dir), *options],
        capture_output=True,
        text=True,
        env=charter_env(),
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    return result


async def test_first_start_prints_password_and_mcp_url_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with run_charter(data_dir, one_time_admin=True) as first:
        password = first.admin_password
        assert password is not None, first.stdout
        assert "asks you to choose your own password" in first.stdout
        assert first.mcp_url == f"{first.base_url}/mcp"
        assert (data_dir / "charter.db").exists()
        jwks = httpx.get(first.base_url + "/jwks.json").json()
        assert len(jwks["keys"]) == 1
        # The MCP endpoint is protected and points clients at its metadata.
        challenge = httpx.post(first.mcp_url, json={})
        assert challenge.status_code == 401
        assert "resource_metadata=" in challenge.headers["www-authenticate"]
        # The one-time password alone signs nobody in: the change page comes first.
        with pytest.raises(AuthorizationFlowError, match="change the one-time password"):
            await _log_in(first, password)
        # Changing it there continues the flow to the client's redirect URI.
        redirect = await _log_in(first, password, new_password=NEW_PASSWORD)
        assert str(redirect).startswith(REDIRECT_URI)
        assert redirect.params.get("code")
        # The one-time password is spent.
        with pytest.raises(AuthorizationFlowError):
            await _log_in(first, password, new_password=NEW_PASSWORD + " again")
        # Never logged.
        assert password not in first.stderr
        assert NEW_PASSWORD not in first.stderr
    assert first.process.returncode in (0, -15)

    with run_charter(data_dir) as second:
        assert second.admin_password is None, second.stdout
        assert "one-time password" not in second.stdout
        assert second.mcp_url == f"{second.base_url}/mcp"
        # The key survived the restart; no second key was made.
        assert httpx.get(second.base_url + "/jwks.json").json() == jwks
        redirect = await _log_in(second, NEW_PASSWORD)
        assert redirect.params.get("code")


def test_s42_discovery_documents_on_one_origin(tmp_path: Path) -> None:
    """Every discovery URL clients probe answers (REAL-CLIENTS.md §4): the PRM names the URL
    clients use and the issuer exactly; the AS metadata's issuer is the URL it came from."""
    with run_charter(tmp_path / "data") as running:
        for path in DISCOVERY_PATHS:
            document = httpx.get(running.base_url + path)
            assert document.status_code == 200, path
            assert document.headers["access-control-allow-origin"] == "*", path
            if "protected-resource" in path:
                assert document.json()["resource"] == running.mcp_url
                assert document.json()["authorization_servers"] == [running.base_url]
            else:
                assert document.json()["issuer"] == running.base_url


async def test_wrong_password_does_not_log_in(tmp_path: Path) -> None:
    with run_charter(tmp_path / "data", one_time_admin=True) as running:
        assert running.admin_password is not None
        with pytest.raises(AuthorizationFlowError):
            await _log_in(running, running.admin_password + "x")


def test_serve_refuses_sqlite_with_several_workers(tmp_path: Path) -> None:
    result = _serve_refused(tmp_path, "--workers", "2")
    assert "PostgreSQL" in result.stderr


def test_issuer_behind_a_proxy_from_the_environment(tmp_path: Path) -> None:
    """``CHARTER_ISSUER`` names the public https origin; every URL clients see uses it."""
    public = "https://mcp.example.test"
    env = charter_env(CHARTER_ISSUER=public + "/")
    with run_charter(tmp_path / "data", env=env) as running:
        assert running.mcp_url == f"{public}/mcp"
        metadata = httpx.get(running.base_url + "/.well-known/oauth-authorization-server").json()
        assert metadata["issuer"] == public  # the trailing slash of an origin is dropped
        assert metadata["authorization_endpoint"] == f"{public}/authorize"
        resource = httpx.get(running.base_url + "/.well-known/oauth-protected-resource/mcp")
        assert resource.json()["resource"] == f"{public}/mcp"
        assert resource.json()["authorization_servers"] == [public]
        challenge = httpx.post(running.base_url + "/mcp", json={})
        assert challenge.status_code == 401
        assert (
            f'resource_metadata="{public}/.well-known/oauth-protected-resource/mcp"'
            in challenge.headers["www-authenticate"]
        )


def test_serve_refuses_a_plain_http_public_issuer(tmp_path: Path) -> None:
    result = _serve_refused(tmp_path, "--issuer", "http://mcp.example.test")
    assert "https" in result.stderr


def test_serve_refuses_an_unknown_tool_module_before_creating_the_admin(tmp_path: Path) -> None:
    result = _serve_refused(tmp_path, "--tools", "no_such_charter_tools")
    assert "no_such_charter_tools" in result.stderr
    assert "one-time password" not in result.stdout


def _first_start_output(data_dir: Path, port: int) -> tuple[list[str], int | None]:
    """``charter serve``'s stdout and stderr as one terminal shows them, up to the line saying
    where to connect (then it is stopped); and its exit status when it ended by itself."""
    process = subprocess.Popen(
        [*CHARTER, "serve", "--port", str(port), "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=charter_env(),
    )
    assert process.stdout is not None
    lines: list[str] = []
    serving = False
    try:
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("Connect your MCP client to "):
                serving = True
                break
    except BaseException:
        process.kill()
        raise
    finally:
        if serving:
            process.terminate()
        ended = process.wait(timeout=60)  # at the end of its output it has ended or is ending
        process.stdout.close()
    return lines, None if serving else ended


def test_one_time_password_is_printed_after_the_migration_messages(tmp_path: Path) -> None:
    lines, _ = _first_start_output(tmp_path / "data", free_port())
    migrations = [n for n, line in enumerate(lines) if "Running upgrade" in line]
    [password_line] = [n for n, line in enumerate(lines) if "this one-time password" in line]
    assert migrations, "\n".join(lines)
    assert max(migrations) < password_line, "\n".join(lines)
    assert password_line < len(lines) - 1  # followed by the password and where to connect


def test_taken_port_on_the_first_start_keeps_the_one_time_password_for_the_next(
    tmp_path: Path,
) -> None:
    """The port is checked before the first start's work: a start that cannot listen neither
    creates the admin nor loses its one-time password, and the next start prints it."""
    data_dir = tmp_path / "data"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        lines, ended = _first_start_output(data_dir, taken.getsockname()[1])
    assert ended == STARTUP_FAILURE, "\n".join(lines)
    assert any("address already in use" in line and "--port" in line for line in lines)
    assert not any("this one-time password" in line for line in lines)
    lines, _ = _first_start_output(data_dir, free_port())
    assert any("this one-time password" in line for line in lines), "\n".join(lines)
