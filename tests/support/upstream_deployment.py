"""``charter serve`` signing people in through node-oidc-provider: the provider knows Charter
as a static confidential client (redirect URI ``<charter>/login/idp/callback``) and Charter
knows the provider as ``corp`` (``charter idps add``)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.support.charter_process import CHARTER, CharterProcess, charter_env, run_charter
from tests.support.live import free_port
from tests.support.oidc_provider import OidcProvider, run_oidc_provider

CLIENT_ID = "charter-at-corp"
CLIENT_SECRET = "charter-secret-at-corp-for-tests-only"
ACCOUNTS = {"jdoe": {"preferred_username": "jdoe", "name": "Jane Doe", "email": "jane@corp.test"}}
#: The test person's password at the provider (its login page checks it).
PASSWORDS = {"jdoe": "jane's password at corp"}


def charter_client(charter_url: str, jwks: dict[str, Any] | None = None) -> dict[str, object]:
    """Charter as a static confidential client of the provider: with a secret, or with the
    public key set ``charter idps add --auth-method private_key_jwt`` printed."""
    client: dict[str, object] = {
        "client_id": CLIENT_ID,
        "redirect_uris": [charter_url + "/login/idp/callback"],
        "grant_types": ["authorization_code"],
        "response_types": ["code"],
    }
    if jwks is None:
        client.update(client_secret=CLIENT_SECRET, token_endpoint_auth_method="client_secret_basic")
    else:
        client.update(
            jwks=jwks,
            token_endpoint_auth_method="private_key_jwt",
            token_endpoint_auth_signing_alg="RS256",
        )
    return client


@contextmanager
def federated_deployment(
    tmp_path: Path,
    *extra_idp_options: str,
    database_url: str | None = None,
    serve_args: tuple[str, ...] = (),
    private_key_jwt: bool = False,
    id_token_claims: bool = True,
) -> Iterator[tuple[OidcProvider, CharterProcess]]:
    """node-oidc-provider knowing Charter, and ``charter serve *serve_args`` with it as
    ``corp`` (on ``database_url`` when given, else SQLite in the data directory). Charter
    authenticates there with its secret, or with ``private_key_jwt`` (the key made by
    ``charter idps add``, registered at the provider before it starts). Without
    ``id_token_claims`` the ID token carries only ``sub`` (the provider's default) and the
    profile and e-mail claims are at its UserInfo endpoint."""
    port, provider_port = free_port(), free_port()
    charter_url = f"http://127.0.0.1:{port}"
    issuer = f"http://127.0.0.1:{provider_port}"
    data_dir = tmp_path / "data"
    env = charter_env(CHARTER_ISSUER=charter_url)
    if database_url:
        env["CHARTER_DATABASE_URL"] = database_url
    credentials = (
        ["--auth-method", "private_key_jwt"] if private_key_jwt else ["--client-secret-stdin"]
    )
    added = subprocess.run(
        [*CHARTER, "--data-dir", str(data_dir), "idps", "add", "corp", "--issuer", issuer,
         "--client-id", CLIENT_ID, "--name", "Corp SSO", "--json", *credentials,
         *extra_idp_options],
        input=CLIENT_SECRET + "\n", capture_output=True, text=True, env=env, timeout=120,
        check=False,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    record = json.loads(added.stdout)
    assert record["redirect_uri"] == f"{charter_url}/login/idp/callback"
    client = charter_client(charter_url, record.get("public_jwks") if private_key_jwt else None)
    with run_oidc_provider(
        {},
        clients=[client],
        accounts=ACCOUNTS,
        passwords=PASSWORDS,
        id_token_claims=id_token_claims,
        port=provider_port,
    ) as provider:
        assert provider.issuer == issuer
        with run_charter(data_dir, *serve_args, port=port, env=env) as charter:
            yield provider, charter
