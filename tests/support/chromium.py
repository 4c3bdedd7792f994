"""A real browser's surroundings for the e2e tests: Debian's chromium and its flags, the
client's redirect URI as a tiny loopback server, and a client registered on ``charter serve``."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from tests.support.browser_flow import pkce_pair
from tests.support.charter_process import CharterProcess
from tests.support.live import free_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CLIENT_NAME = "Browser Test App"


@dataclass
class Callback:
    """The client's redirect URI: records every query it receives."""

    url: str
    hits: list[dict[str, str]] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)


@contextmanager
def callback_server() -> Iterator[Callback]:
    port = free_port()
    callback = Callback(f"http://127.0.0.1:{port}/callback")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            if parts.path != "/callback":
                self.send_error(404)
                return
            query = {key: values[0] for key, values in parse_qs(parts.query).items()}
            callback.hits.append(query)
            body = b"<!doctype html><title>Client</title><p id='done'>Back in the client.</p>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            callback.arrived.set()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield callback
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def register(charter: CharterProcess, redirect_uri: str) -> str:
    response = httpx.post(
        charter.base_url + "/register",
        json={
            "client_name": CLIENT_NAME,
            "redirect_uris": [redirect_uri],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
        },
    )
    assert response.status_code == 201, response.text
    client_id: str = response.json()["client_id"]
    return client_id


def authorize_url(
    charter: CharterProcess, client_id: str, redirect_uri: str, scope: str
) -> tuple[str, str, str]:
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(16)
    url = httpx.URL(charter.base_url + "/authorize").copy_merge_params(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "state": state,
            "scope": scope,
            "resource": charter.mcp_url,
        }
    )
    return str(url), state, verifier
