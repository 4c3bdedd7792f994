"""Signing in to Charter through a real, independent OpenID Provider, headless.

node-oidc-provider (npm ``oidc-provider``, OpenID Certified) is the organisation's identity
provider, with Charter registered there as a static confidential client whose redirect URI is
Charter's ``/login/idp/callback``; ``charter idps add`` configures it in Charter, ``charter
serve`` runs for real. The official MCP Python SDK client finds Charter from the MCP server's
401, registers, and its redirect handler is a person who picks "Sign in with Corp SSO" on
Charter's login page, posts the provider's real login and consent forms, approves on Charter's
consent page, and lands on the SDK's redirect URI with Charter's code. ``whoami`` then names the
provider's user.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, select

from authserver.storage.models import User, UserLink
from tests.support.charter_process import CHARTER, CharterProcess, charter_env, run_charter
from tests.support.database import POSTGRES_ENV, postgres_base_url, scratch_postgres_database
from tests.support.live import free_port
from tests.support.oidc_provider import run_oidc_provider
from tests.support.sdk_client import MemoryStorage, Observed, connect, make_provider, structured
from tests.support.upstream import FederatedPerson
from tests.support.upstream_deployment import (
    CLIENT_ID,
    CLIENT_SECRET,
    PASSWORDS,
    charter_client,
    federated_deployment,
)

pytestmark = [pytest.mark.e2e]

JDOE_PASSWORD = PASSWORDS["jdoe"]


def people(
    charter: CharterProcess, database_url: str | None = None
) -> dict[str, tuple[str | None, str, str]]:
    """username → (display name, link issuer, link sub)."""
    engine = create_engine(database_url or f"sqlite:///{charter.data_dir / 'charter.db'}")
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                select(User.username, User.display_name, UserLink.issuer, UserLink.subject).join(
                    UserLink, UserLink.user_id == User.id
                )
            ).all()
    finally:
        engine.dispose()
    return {row[0]: (row[1], row[2], row[3]) for row in rows}


async def test_the_sdk_client_signs_in_through_node_oidc_provider_and_whoami_names_the_user(
    tmp_path: Path,
) -> None:
    with federated_deployment(tmp_path) as (provider, charter):
        person, storage, observed = (
            FederatedPerson(charter.base_url, "jdoe", JDOE_PASSWORD),
            MemoryStorage(),
            Observed(),
        )
        try:
            auth = make_provider(charter, person, storage)  # type: ignore[arg-type]
            async with connect(charter, auth, observed) as client:
                whoami = structured(await client.call_tool("whoami", {}))
            assert person.callback is not None
            replayed = await person.http.get(person.callback)  # S75 against the real provider
        finally:
            await person.aclose()
        linked = people(charter)
    assert person.pages == ["charter-login", "login", "consent", "charter-consent"]
    assert person.last_redirect is not None and "code" in person.last_redirect.params
    assert person.last_redirect.params["iss"] == charter.base_url
    assert whoami["username"] == "jdoe" and whoami["name"] == "Jane Doe"
    assert linked["jdoe"] == ("Jane Doe", provider.issuer, "jdoe")
    assert observed.statuses("/mcp")[0] == 401
    assert replayed.status_code == 403 and "already used" in replayed.text


async def test_without_passwords_and_one_provider_authorize_goes_straight_to_it(
    tmp_path: Path,
) -> None:
    port = free_port()
    charter_url = f"http://127.0.0.1:{port}"
    with run_oidc_provider({}, clients=[charter_client(charter_url)]) as provider:
        env = charter_env(CHARTER_ISSUER=charter_url, CHARTER_PASSWORD_LOGIN="false")
        added = subprocess.run(
            [*CHARTER, "--data-dir", str(tmp_path / "data"), "idps", "add", "corp",
             "--issuer", provider.issuer, "--client-id", CLIENT_ID, "--client-secret-stdin"],
            input=CLIENT_SECRET + "\n", capture_output=True, text=True, env=env, timeout=120,
            check=False,
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
        with run_charter(tmp_path / "data", port=port, env=env) as charter:
            async with httpx.AsyncClient(base_url=charter.base_url, timeout=30) as http:
                registered = await http.post("/register", json={
                    "redirect_uris": ["http://127.0.0.1:53682/callback"],
                    "token_endpoint_auth_method": "none",
                })  # fmt: skip
                client_id = registered.json()["client_id"]
                first = await http.get("/authorize", params={
                    "response_type": "code", "client_id": client_id,
                    "redirect_uri": "http://127.0.0.1:53682/callback", "state": "s",
                    "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
                    "code_challenge_method": "S256",
                })  # fmt: skip
                assert first.status_code == 302, first.text
                upstream = await http.get(first.headers["location"])
                password = await http.post("/authorize/login", data={"username": "admin"})
    assert upstream.status_code == 302
    assert upstream.headers["location"].startswith(provider.issuer + "/auth?")
    assert password.status_code in (400, 403)


@pytest.mark.postgres
async def test_two_workers_on_postgresql_finish_each_others_upstream_sign_ins(
    tmp_path: Path,
) -> None:
    """The sign-in's start and its callback may reach different workers: the upstream login
    lives in SQL. Several sign-ins in a row each reach whichever worker accepts them."""
    if postgres_base_url() is None:
        pytest.skip(f"multi-worker serve needs PostgreSQL: set {POSTGRES_ENV}")
    with scratch_postgres_database() as url:
        serve = ("--workers", "2")
        with federated_deployment(tmp_path, database_url=url, serve_args=serve) as (
            provider,
            charter,
        ):
            seen = []
            for _ in range(4):
                # A new connection per request: each may be accepted by either worker.
                fresh = httpx.AsyncClient(
                    timeout=30, limits=httpx.Limits(max_keepalive_connections=0)
                )
                person = FederatedPerson(charter.base_url, "jdoe", JDOE_PASSWORD, http=fresh)
                try:
                    auth = make_provider(charter, person, MemoryStorage())  # type: ignore[arg-type]
                    async with connect(charter, auth, Observed()) as client:
                        seen.append(structured(await client.call_tool("whoami", {})))
                finally:
                    await person.aclose()
            assert charter.stderr.count("Started server process") == 2
            linked = people(charter, url)
    assert {(me["username"], me["name"]) for me in seen} == {("jdoe", "Jane Doe")}
    assert linked == {"jdoe": ("Jane Doe", provider.issuer, "jdoe")}


async def test_charter_authenticates_at_node_oidc_provider_with_private_key_jwt(
    tmp_path: Path,
) -> None:
    """``charter idps add --auth-method private_key_jwt`` makes a key and prints its public key
    set; registered at the provider, it signs Charter's client assertions (RFC 7523)."""
    with federated_deployment(tmp_path, private_key_jwt=True) as (provider, charter):
        person = FederatedPerson(charter.base_url, "jdoe", JDOE_PASSWORD)
        try:
            auth = make_provider(charter, person, MemoryStorage())  # type: ignore[arg-type]
            async with connect(charter, auth, Observed()) as client:
                whoami = structured(await client.call_tool("whoami", {}))
        finally:
            await person.aclose()
    assert whoami["username"] == "jdoe"
    assert not any("invalid_client" in line for line in provider.output)


async def test_claims_the_id_token_lacks_come_from_the_userinfo_endpoint(tmp_path: Path) -> None:
    """node-oidc-provider's default puts only ``sub`` in the ID token: Charter asks UserInfo."""
    with federated_deployment(tmp_path, id_token_claims=False) as (provider, charter):
        person = FederatedPerson(charter.base_url, "jdoe", JDOE_PASSWORD)
        try:
            auth = make_provider(charter, person, MemoryStorage())  # type: ignore[arg-type]
            async with connect(charter, auth, Observed()) as client:
                whoami = structured(await client.call_tool("whoami", {}))
        finally:
            await person.aclose()
        linked = people(charter)
    assert (whoami["username"], whoami["name"]) == ("jdoe", "Jane Doe")
    assert linked["jdoe"] == ("Jane Doe", provider.issuer, "jdoe")


async def test_a_wrong_password_at_the_provider_gets_no_code_and_no_account(
    tmp_path: Path,
) -> None:
    with federated_deployment(tmp_path) as (_provider, charter):
        person = FederatedPerson(charter.base_url, "jdoe", "not jane's password")
        try:
            async with httpx.AsyncClient(base_url=charter.base_url, timeout=30) as http:
                client_id = (await http.post("/register", json={
                    "redirect_uris": ["http://127.0.0.1:53682/callback"],
                    "token_endpoint_auth_method": "none",
                })).json()["client_id"]  # fmt: skip
            url = httpx.URL(charter.base_url + "/authorize").copy_merge_params({
                "response_type": "code", "client_id": client_id, "state": "s",
                "redirect_uri": "http://127.0.0.1:53682/callback",
                "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
                "code_challenge_method": "S256",
            })  # fmt: skip
            with pytest.raises(AssertionError, match="wrong password"):
                await person.authorize(str(url))
        finally:
            await person.aclose()
        assert people(charter) == {}
