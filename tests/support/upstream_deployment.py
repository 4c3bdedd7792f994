"""``charter serve`` signing people in through node-oidc-provider: the provider knows Charter
as a static confidential client (redirect URI ``<charter>/login/idp/callback``) and Charter
knows the provider as ``corp`` (``charter idps add``)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.charter_process import CHARTER, CharterProcess, charter_env, run_charter
from tests.support.live import free_port
from tests.support.oidc_provider import OidcProvider, run_oidc_provider

CLIENT_ID = "charter-at-corp"
CLIENT_SECRET = "charter-secret-at-corp-for-tests-only"
ACCOUNTS = {"jdoe": {"preferred_username": "jdoe", "name": "Jane Doe", "email": "jane@corp.test"}}


def charter_client(charter_url: str) -> dict[str, object]:
    """Charter as a static confidential client of the provider."""
    return {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "redirect_uris": [charter_url + "/login/idp/callback"],
        "grant_types": ["authorization_code"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "client_secret_basic",
    }


@contextmanager
def federated_deployment(
    tmp_path: Path,
    *extra_idp_options: str,
    database_url: str | None = None,
    serve_args: tuple[str, ...] = (),
) -> Iterator[tuple[OidcProvider, CharterProcess]]:
    """node-oidc-provider knowing Charter, and ``charter serve *serve_args`` with it as
    ``corp`` (on ``database_url`` when given, else SQLite in the data directory)."""
    port = free_port()
    charter_url = f"http://127.0.0.1:{port}"
    data_dir = tmp_path / "data"
    with run_oidc_provider(
        {}, clients=[charter_client(charter_url)], accounts=ACCOUNTS, id_token_claims=True
    ) as provider:
        env = charter_env(CHARTER_ISSUER=charter_url)
        if database_url:
            env["CHARTER_DATABASE_URL"] = database_url
        added = subprocess.run(
            [*CHARTER, "--data-dir", str(data_dir), "idps", "add", "corp",
             "--issuer", provider.issuer, "--client-id", CLIENT_ID, "--name", "Corp SSO",
             "--client-secret-stdin", *extra_idp_options],
            input=CLIENT_SECRET + "\n", capture_output=True, text=True, env=env, timeout=120,
            check=False,
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
        assert f"{charter_url}/login/idp/callback" in added.stdout
        with run_charter(data_dir, *serve_args, port=port, env=env) as charter:
            yield provider, charter
