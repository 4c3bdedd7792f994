"""node-oidc-provider (npm ``oidc-provider``, OpenID Certified) on a loopback port for a test,
and a headless person who signs in on its own login and consent pages.

The provider is started by ``tests/support/oidc_provider.mjs`` on Node 22 from
``$CHARTER_CONFORMANCE_DIR`` (``.ci/install-oidc-provider.sh`` installs the package under
``$CHARTER_CONFORMANCE_DIR/oidc``). Its development login page signs in any login name with any
password; the person posts those real forms, then stops at the first redirect that leaves the
provider (the client's ``redirect_uri``) without following it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from tests.support.browser_flow import parse_forms

LAUNCHER = Path(__file__).with_name("oidc_provider.mjs")
NODE = "node_modules/node/bin/node"
ENTRY = "oidc/node_modules/oidc-provider/lib/index.js"
START_TIMEOUT = 30.0
MAX_STEPS = 12
#: A confidential client the provider knows from the start (the resource server's
#: introspection credentials, and a client for client-credentials tokens of other audiences).
RESOURCE_CLIENT_ID = "charter-resource"
RESOURCE_CLIENT_SECRET = "resource-secret-for-tests-only-0123456789"


def install_paths() -> tuple[Path, Path]:
    """Node 22 and the provider's entry file (skips the test when they are not installed)."""
    value = os.environ.get("CHARTER_CONFORMANCE_DIR")
    base = Path(value) if value else Path(__file__).resolve().parents[2] / ".ci-cache/conformance"
    node, entry = base / NODE, base / ENTRY
    if not node.is_file() or not entry.is_file():
        pytest.skip(f"no Node 22 + oidc-provider under {base}: run .ci/install-oidc-provider.sh")
    return node, entry


@dataclass
class OidcProvider:
    """A running provider: its issuer and its output."""

    issuer: str
    process: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)

    async def client_credentials_token(self, resource: str, scope: str = "mcp") -> str:
        """An access token for ``resource`` by the client credentials grant."""
        async with httpx.AsyncClient(timeout=30) as http:
            response = await http.post(
                self.issuer + "/token",
                data={"grant_type": "client_credentials", "resource": resource, "scope": scope},
                auth=(RESOURCE_CLIENT_ID, RESOURCE_CLIENT_SECRET),
            )
        assert response.status_code == 200, response.text
        token = response.json()["access_token"]
        assert isinstance(token, str)
        return token


def resource_client() -> dict[str, Any]:
    return {
        "client_id": RESOURCE_CLIENT_ID,
        "client_secret": RESOURCE_CLIENT_SECRET,
        "grant_types": ["client_credentials"],
        "response_types": [],
        "redirect_uris": [],
    }


@contextmanager
def run_oidc_provider(
    resources: dict[str, str],
    *,
    access_token_format: str = "jwt",
    clients: list[dict[str, Any]] | None = None,
    ttl: dict[str, int] | None = None,
    port: int = 0,
    accounts: dict[str, dict[str, Any]] | None = None,
    id_token_claims: bool = False,
    passwords: dict[str, str] | None = None,
) -> Iterator[OidcProvider]:
    """Start the provider issuing tokens for ``resources`` (URL → scope words); stop it after.

    ``accounts`` adds claims per login (over ``sub``-derived defaults); ``id_token_claims`` puts
    the scopes' claims into ID tokens (the upstream OpenID Provider of Charter's sign-in);
    ``passwords`` (login → password) makes the login page check passwords.
    """
    node, entry = install_paths()
    options = {
        "port": port,
        "accessTokenFormat": access_token_format,
        "resources": resources,
        "clients": [resource_client(), *(clients or [])],
        "ttl": ttl or {},
        "accounts": accounts or {},
        "idTokenClaims": id_token_claims,
        **({"passwords": passwords} if passwords else {}),
    }
    env = {**os.environ, "OIDC_PROVIDER_ENTRY": str(entry), "NODE_ENV": "test"}
    process = subprocess.Popen(
        [str(node), str(LAUNCHER), json.dumps(options)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    output: list[str] = []
    ready = threading.Event()
    reader = threading.Thread(target=_read, args=(process, output, ready), daemon=True)
    reader.start()
    try:
        if not ready.wait(START_TIMEOUT):
            raise AssertionError("oidc-provider did not start:\n" + "".join(output))
        issuer = next(line.split()[1] for line in output if line.startswith("READY "))
        yield OidcProvider(issuer, process, output)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        reader.join(timeout=5)
        if process.stdout is not None:
            process.stdout.close()


def _read(process: subprocess.Popen[str], into: list[str], ready: threading.Event) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        into.append(line)
        if line.startswith("READY "):
            ready.set()
    ready.set()


@dataclass
class ProviderUser:
    """Signs in at node-oidc-provider as ``login`` and continues on every consent page."""

    login: str
    password: str = "any-password"
    last_redirect: httpx.URL | None = None
    pages: list[str] = field(default_factory=list)
    _http: httpx.AsyncClient = field(default_factory=lambda: httpx.AsyncClient(timeout=30))

    async def aclose(self) -> None:
        await self._http.aclose()

    async def authorize(self, url: str) -> httpx.URL:
        """Open ``url`` at the provider, post its forms; the redirect that leaves it."""
        response = await self._http.get(url, follow_redirects=False)
        origin = (response.url.scheme, response.url.host, response.url.port)
        for _ in range(MAX_STEPS):
            if response.is_redirect:
                target = response.url.join(response.headers["location"])
                if (target.scheme, target.host, target.port) != origin:
                    self.last_redirect = target
                    return target
                response = await self._http.get(target, follow_redirects=False)
                continue
            response = await self._submit(response)
        raise AssertionError(f"no redirect out of the provider after {MAX_STEPS} steps")

    async def _submit(self, page: httpx.Response) -> httpx.Response:
        forms = parse_forms(page.text)
        assert page.status_code == 200 and forms, f"{page.status_code}: {page.text[:2000]}"
        form = forms[0]
        self.pages.append(form.fields.get("prompt", "?"))
        data = dict(form.fields)
        if "login" in data or form.fields.get("prompt") == "login":
            data.update(login=self.login, password=self.password)
        action = page.url.join(form.attrs.get("action") or str(page.url))
        return await self._http.post(action, data=data, follow_redirects=False)


async def authorization_code_token(
    provider: OidcProvider, resource: str, scope: str, login: str = "alice"
) -> dict[str, Any]:
    """A public client registered at the provider (RFC 7591) runs the authorization code grant
    with PKCE and ``resource`` (RFC 8707) while ``login`` signs in; the token response."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    redirect_uri = "http://127.0.0.1:53682/callback"
    user = ProviderUser(login)
    async with httpx.AsyncClient(timeout=30) as http:
        registered = await http.post(
            provider.issuer + "/reg",
            json={
                "redirect_uris": [redirect_uri],
                "token_endpoint_auth_method": "none",
                "grant_types": ["authorization_code"],
                "response_types": ["code"],
            },
        )
        assert registered.status_code == 201, registered.text
        client_id = registered.json()["client_id"]
        query = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "scope": scope,
            "resource": resource,
            "state": secrets.token_urlsafe(16),
            "code_challenge": challenge.decode().rstrip("="),
            "code_challenge_method": "S256",
        }
        try:
            redirect = await user.authorize(f"{provider.issuer}/auth?{urlencode(query)}")
        finally:
            await user.aclose()
        assert redirect.params.get("state") == query["state"], redirect
        answer = await http.post(
            provider.issuer + "/token",
            data={
                "grant_type": "authorization_code",
                "code": redirect.params["code"],
                "redirect_uri": redirect_uri,
                "client_id": client_id,
                "code_verifier": verifier,
                "resource": resource,
            },
        )
    assert answer.status_code == 200, answer.text
    tokens = answer.json()
    assert isinstance(tokens, dict)
    return tokens
