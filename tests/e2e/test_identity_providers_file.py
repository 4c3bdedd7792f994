"""``charter serve`` with ``CHARTER_IDENTITY_PROVIDERS_FILE``: the provider declared there (the
real node-oidc-provider, Charter registered as its static confidential client) is offered on
Charter's login page under the file's display name, and its sign-in link reaches the provider;
a mistake in the file stops ``charter serve`` before it serves, naming the file, the provider
and the field, without a traceback. (The whole sign-in through the provider is
``tests/e2e/test_upstream_oidc_provider.py``.)"""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest

from tests.support.browser_flow import authorize_params, pkce_pair
from tests.support.charter_process import CHARTER, charter_env, run_charter
from tests.support.live import free_port
from tests.support.oidc_provider import run_oidc_provider
from tests.support.upstream_deployment import ACCOUNTS, CLIENT_ID, CLIENT_SECRET, charter_client

pytestmark = [pytest.mark.e2e]

REDIRECT = "http://127.0.0.1:9/callback"


def providers_file(path: Path, issuer: str, name: str = "Corp from the file") -> Path:
    path.write_text(
        f'[provider.corp]\nissuer = "{issuer}"\nclient_id = "{CLIENT_ID}"\n'
        f'client_secret_env = "CORP_CLIENT_SECRET"\ndisplay_name = "{name}"\n',
        encoding="utf-8",
    )
    return path


def test_serve_offers_the_provider_of_the_file_on_the_login_page(tmp_path: Path) -> None:
    port, provider_port = free_port(), free_port()
    charter_url = f"http://127.0.0.1:{port}"
    issuer = f"http://127.0.0.1:{provider_port}"
    env = charter_env(
        CHARTER_ISSUER=charter_url,
        CHARTER_IDENTITY_PROVIDERS_FILE=str(providers_file(tmp_path / "idps.toml", issuer)),
        CORP_CLIENT_SECRET=CLIENT_SECRET,
    )
    with (
        run_oidc_provider(
            {},
            clients=[charter_client(charter_url)],
            accounts=ACCOUNTS,
            id_token_claims=True,
            port=provider_port,
        ) as provider,  # fmt: skip
        run_charter(tmp_path / "data", port=port, env=env) as charter,
    ):
        assert provider.issuer == issuer
        assert "Identity providers file: 1 provider(s); created corp" in charter.stdout
        with httpx.Client(base_url=charter_url, timeout=30) as http:
            registered = http.post(
                "/register",
                json={"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none",
                      "client_name": "Login page probe"},
            )  # fmt: skip
            assert registered.status_code == 201, registered.text
            params = authorize_params(
                registered.json()["client_id"], REDIRECT, pkce_pair()[1], scope="mcp"
            )
            page = http.get("/authorize", params=params, follow_redirects=True)
            assert page.status_code == 200, page.text
            assert "Sign in with <bdi>Corp from the file</bdi>" in page.text
            marker = 'data-provider="Corp from the file" href="'
            start = page.text.index(marker) + len(marker)
            link = page.text[start : page.text.index('"', start)].replace("&amp;", "&")
            upstream = http.get(link)
            assert upstream.status_code in (302, 303), upstream.text
            location = httpx.URL(upstream.headers["location"])
            assert str(location).startswith(issuer)
            assert location.params["client_id"] == CLIENT_ID
        listed = subprocess.run(
            [*CHARTER, "--data-dir", str(tmp_path / "data"), "idps", "list"],
            capture_output=True, text=True, env=env, timeout=120, check=False,
        )  # fmt: skip
        assert listed.returncode == 0, listed.stderr
        assert "corp" in listed.stdout and "file" in listed.stdout


def test_serve_stops_on_a_mistake_in_the_file_naming_it(tmp_path: Path) -> None:
    path = providers_file(tmp_path / "idps.toml", "http://idp.example.com")
    env = charter_env(CHARTER_IDENTITY_PROVIDERS_FILE=str(path), CORP_CLIENT_SECRET="x")
    served = subprocess.run(
        [*CHARTER, "serve", "--port", str(free_port()), "--data-dir", str(tmp_path / "data")],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert served.returncode == 1, served.stdout + served.stderr
    assert f"the identity providers file {path}: provider 'corp': issuer: must be an https URL" in (
        served.stderr
    )
    assert "Traceback" not in served.stderr and "one-time password" not in served.stdout
