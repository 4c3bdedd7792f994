"""The official MCP Python SDK client against ``charter serve`` (REAL-CLIENTS.md §2).

The SDK discovers the authorization server from the 401, registers (DCR, or a client ID
metadata document served by the test), runs PKCE with ``resource``, calls tools, steps up its
scope on a 403 ``insufficient_scope`` and refreshes its access token. A headless user drives the
login and consent pages over plain HTTP.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.charter_process import CharterProcess, run_charter
from tests.support.headless import ConsentPage, HeadlessUser
from tests.support.live import free_port
from tests.support.sdk_client import (
    REDIRECT_URI,
    ConsentDeniedError,
    MemoryStorage,
    Observed,
    connect,
    make_provider,
    scopes_of,
    structured,
)

pytestmark = pytest.mark.e2e


async def test_sdk_discovers_registers_steps_up_and_refreshes(tmp_path: Path) -> None:
    with run_charter(tmp_path / "data") as charter:
        assert charter.admin_password is not None
        user = HeadlessUser("admin", charter.admin_password)
        storage = MemoryStorage()
        provider = make_provider(charter, user, storage)
        observed = Observed()
        try:
            async with connect(charter, provider, observed) as client:
                # Discovery started from a 401 on the MCP endpoint; registration was DCR.
                assert observed.statuses("/mcp")[0] == 401
                assert 201 in observed.statuses("/register")
                assert storage.client_info is not None
                assert storage.client_info.client_id.startswith("dcr_")
                first_url = httpx.URL(user.authorize_urls[0])
                assert first_url.params["code_challenge_method"] == "S256"
                assert first_url.params["resource"] == charter.mcp_url
                assert scopes_of(user.authorize_urls[0]) == {"mcp"}
                assert len(user.consent_pages) == 1

                # tools/list shows only what the granted scopes allow.
                tools = {tool.name for tool in (await client.list_tools()).tools}
                assert tools == {"whoami"}

                me = structured(await client.call_tool("whoami", {}))
                assert me["client_id"] == storage.client_info.client_id
                assert me["scopes"] == ["mcp"]
                assert storage.tokens is not None
                claims = jwt_claims(storage.tokens.access_token)
                assert claims["aud"] in (charter.mcp_url, [charter.mcp_url])  # RFC 8707 binding
                assert claims["iss"] == charter.base_url
                assert claims["sub"] == me["subject"]

                # A write without notes:write: 403 insufficient_scope, then the SDK
                # re-authorizes with the union of scopes and retries.
                added = structured(
                    await client.call_tool("notes_add", {"title": "hello", "body": "from the SDK"})
                )
                assert added["title"] == "hello"
                refused = [
                    challenge
                    for _m, path, status, challenge in observed.exchanges
                    if path == "/mcp" and status == 403
                ]
                assert refused, observed.exchanges
                assert 'error="insufficient_scope"' in refused[0]
                assert "notes:write" in refused[0]
                assert len(user.authorize_urls) == 2
                assert "notes:write" in scopes_of(user.authorize_urls[1])
                assert "mcp" in scopes_of(user.authorize_urls[1])
                # The user saw notes:write on the second consent page only.
                assert not user.consent_pages[0].shows("notes:write")
                assert user.consent_pages[1].shows("notes:write")
                me = structured(await client.call_tool("whoami", {}))
                assert "notes:write" in me["scopes"]
                tools = {tool.name for tool in (await client.list_tools()).tools}
                assert {"whoami", "notes_add", "notes_delete"} <= tools

                # Refresh: revoke the current access token at the server and let the SDK see
                # it as expired; it must refresh (no new authorization) and keep working.
                assert storage.tokens is not None
                old_access = storage.tokens.access_token
                old_refresh = storage.tokens.refresh_token
                assert old_refresh
                revoked = httpx.post(
                    charter.base_url + "/revoke",
                    data={"token": old_access, "client_id": storage.client_info.client_id},
                )
                assert revoked.status_code == 200
                # The resource server's revocation view polls about once a second.
                assert _eventually_refused(charter, old_access)
                provider.context.token_expiry_time = time.time() - 1

                me = structured(await client.call_tool("whoami", {}))
                assert set(me["scopes"]) == {"mcp", "notes:write"}
                assert len(user.authorize_urls) == 2, "refresh must not re-authorize"
                assert storage.tokens.access_token != old_access
                assert storage.tokens.refresh_token not in (None, old_refresh)  # rotated
                token_requests = [e for e in observed.exchanges if e[1] == "/token"]
                assert [status for _m, _p, status, _w in token_requests] == [200, 200, 200]

                # Reading needs notes:read: one more step-up, keeping the earlier scopes.
                listed = structured(await client.call_tool("notes_list", {}))
                assert [note["title"] for note in listed["notes"]] == ["hello"]
                assert len(user.authorize_urls) == 3
                assert scopes_of(user.authorize_urls[2]) == {"mcp", "notes:read", "notes:write"}
        finally:
            await user.aclose()
        # Tokens never reach the logs.
        assert old_access not in charter.stderr
        assert old_refresh not in charter.stderr


async def test_sdk_write_refused_until_consent_for_notes_write(tmp_path: Path) -> None:
    """Denying the step-up consent leaves the client unable to write."""
    with run_charter(tmp_path / "data") as charter:
        assert charter.admin_password is not None

        def approve_without_write(page: ConsentPage) -> bool:
            return not page.shows("notes:write")

        user = HeadlessUser("admin", charter.admin_password, decide=approve_without_write)
        storage = MemoryStorage()
        provider = make_provider(charter, user, storage)
        observed = Observed()
        try:
            # What the SDK does: the failed step-up (the callback raises) ends the connection;
            # the error surfaces from the client's context, caused by the denial.
            with pytest.raises(Exception) as raised:
                async with connect(charter, provider, observed) as client:
                    structured(await client.call_tool("whoami", {}))
                    await client.call_tool("notes_add", {"title": "no", "body": "denied"})
            assert _caused_by(raised.value, ConsentDeniedError), raised.value
            assert 403 in observed.statuses("/mcp")
            assert len(user.consent_pages) == 2
        finally:
            await user.aclose()
        # Nothing was written: a fresh grant with notes:read sees no notes.
        user = HeadlessUser("admin", charter.admin_password)
        provider = make_provider(charter, user, MemoryStorage())
        try:
            async with connect(charter, provider, Observed()) as client:
                listed = structured(await client.call_tool("notes_list", {}))
                assert listed["notes"] == []
        finally:
            await user.aclose()


def jwt_claims(token: str) -> dict[str, Any]:
    """The payload of a JWS compact token, unverified (the server verified it)."""
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return claims


def _caused_by(error: BaseException, kind: type[BaseException]) -> bool:
    seen: set[int] = set()
    stack: list[BaseException] = [error]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, kind):
            return True
        stack.extend(getattr(current, "exceptions", ()))
        for linked in (current.__cause__, current.__context__):
            if linked is not None:
                stack.append(linked)
    return False


def _eventually_refused(charter: CharterProcess, token: str, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if _mcp_status(charter, token) == 401:
            return True
        time.sleep(0.2)
    return False


def _mcp_status(charter: CharterProcess, token: str) -> int:
    response = httpx.post(
        charter.mcp_url,
        headers={
            "Authorization": f"Bearer {token}",
            "Accept": "application/json, text/event-stream",
        },
        json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
    )
    return response.status_code


# -- client ID metadata document ---------------------------------------------------------------


@contextmanager
def serve_metadata_document(redirect_uri: str) -> Iterator[str]:
    """Serve a client ID metadata document over http on loopback; yields its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/oauth/client.json"
    document = json.dumps(
        {
            "client_id": url,
            "client_name": "Charter SDK e2e (metadata document)",
            "redirect_uris": [redirect_uri],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        }
    ).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/oauth/client.json":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(document)))
            self.end_headers()
            self.wfile.write(document)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield url
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


async def test_sdk_with_client_id_metadata_document(tmp_path: Path) -> None:
    with serve_metadata_document(REDIRECT_URI) as document_url:
        host = httpx.URL(document_url)
        args = ("--ssrf-allow-host", f"{host.host}:{host.port}", "--ssrf-allow-http")
        with run_charter(tmp_path / "data", *args) as charter:
            assert charter.admin_password is not None
            metadata = httpx.get(charter.base_url + "/.well-known/oauth-authorization-server")
            assert metadata.json()["client_id_metadata_document_supported"] is True
            user = HeadlessUser("admin", charter.admin_password)
            storage = MemoryStorage()
            provider = make_provider(charter, user, storage)
            # The SDK accepts only https document URLs; this test serves http on loopback
            # (allowed by --ssrf-allow-http for that host), so set it after validation.
            provider.context.client_metadata_url = document_url
            observed = Observed()
            try:
                async with connect(charter, provider, observed) as client:
                    me = structured(await client.call_tool("whoami", {}))
                    assert me["client_id"] == document_url
                assert observed.statuses("/register") == [], "no DCR with a metadata document"
                assert httpx.URL(user.authorize_urls[0]).params["client_id"] == document_url
                assert user.consent_pages[0].shows("Charter SDK e2e (metadata document)")
            finally:
                await user.aclose()
