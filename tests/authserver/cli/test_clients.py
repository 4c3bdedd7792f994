"""``charter clients``: static clients, listing every kind, disabling, removal, secrets."""

from __future__ import annotations

import json
from collections.abc import Callable

from authserver.context import AuthServer
from authserver.storage.crypto import hash_token
from authserver.storage.models import AccessToken, Client, Grant, RefreshToken
from tests.support.cli_runner import Charter
from tests.support.factories import create_client, create_user
from tests.support.rows import issue_grant


def load_client(server: AuthServer, client_id: str) -> Client | None:
    with server.database.transaction() as session:
        return session.get(Client, client_id)


def test_add_public_client_then_list(cli: Charter, server: AuthServer) -> None:
    result = cli(
        "clients", "add", "Desktop App",
        "--redirect-uri", "http://127.0.0.1:33418/callback",
        "--redirect-uri", "com.example.app:/oauth",
        "--scope", "mcp notes:read",
        "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    made = json.loads(result.stdout)
    assert "client_secret" not in made
    client = load_client(server, made["client_id"])
    assert client is not None
    assert client.kind == "static"
    assert client.token_endpoint_auth_method == "none"
    assert client.secret_hash is None
    assert client.scope == "mcp notes:read"
    assert client.redirect_uris == ["http://127.0.0.1:33418/callback", "com.example.app:/oauth"]
    assert client.grant_types == ["authorization_code", "refresh_token"]

    table = cli("clients", "list").stdout
    header, row = table.splitlines()
    assert header.split("  ")[0] == "CLIENT ID"
    for column in ("NAME", "KIND", "REDIRECT URIS", "CREATED", "LAST USED", "STATUS"):
        assert column in header
    assert made["client_id"] in row
    assert "Desktop App" in row
    assert "static" in row
    assert "enabled" in row


def test_s56_confidential_secret_is_printed_once_and_stored_hashed(
    cli: Charter, server: AuthServer
) -> None:
    result = cli(
        "clients", "add", "Backend", "--confidential",
        "--redirect-uri", "https://app.example.com/cb",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    secret_line = next(line for line in result.stdout.splitlines() if "client_secret" in line)
    secret = secret_line.split()[-1]
    client_id = next(
        line.split()[-1] for line in result.stdout.splitlines() if line.startswith("client_id")
    )
    client = load_client(server, client_id)
    assert client is not None
    assert client.secret_hash == hash_token(secret)
    assert client.token_endpoint_auth_method == "client_secret_basic"
    for args in (("clients", "show", client_id, "--json"), ("clients", "list", "--json")):
        shown = cli(*args).stdout
        assert secret not in shown
        assert client.secret_hash not in shown


def test_bad_redirect_uri_is_a_usage_error(cli: Charter, server: AuthServer) -> None:
    for uri in ("http://evil.example/cb", "javascript:alert(1)", "https://a.example/cb#frag"):
        result = cli("clients", "add", "Bad", "--redirect-uri", uri)
        assert result.exit_code == 2, uri
        assert "--redirect-uri" in result.stderr
    assert cli("clients", "list", "--json").stdout.strip() == "[]"


def test_unknown_scope_and_inconsistent_grants_are_usage_errors(cli: Charter) -> None:
    uri = "http://127.0.0.1/cb"
    assert cli("clients", "add", "A", "--redirect-uri", uri, "--scope", "root").exit_code == 2
    no_uri = cli("clients", "add", "A")
    assert no_uri.exit_code == 2
    assert "--redirect-uri" in no_uri.stderr
    public_cc = cli("clients", "add", "A", "--grant-type", "client_credentials")
    assert public_cc.exit_code == 2
    assert "--confidential" in public_cc.stderr
    machine = cli(
        "clients", "add", "Robot", "--confidential", "--grant-type", "client_credentials", "--json"
    )
    assert machine.exit_code == 0, machine.output
    assert json.loads(machine.stdout)["grant_types"] == ["client_credentials"]


def test_list_names_every_kind(cli: Charter, server: AuthServer) -> None:
    create_client(server, client_id="dcr_one", kind="dynamic", client_name="Registered")
    create_client(server, client_id="https://app.example.com/client.json", kind="metadata_document")
    create_client(server, client_id="static-one", kind="static")
    table = cli("clients", "list").stdout
    assert "metadata document" in table
    assert "dynamic" in table
    assert "static" in table
    only_dynamic = json.loads(cli("clients", "list", "--kind", "dynamic", "--json").stdout)
    assert [record["client_id"] for record in only_dynamic] == ["dcr_one"]


def test_show_unknown_client_fails_with_a_hint(cli: Charter) -> None:
    result = cli("clients", "show", "nope")
    assert result.exit_code == 1
    assert "no client 'nope'" in result.stderr
    assert "charter clients list" in result.stderr
    for command in ("disable", "remove", "rotate-secret"):  # checked before asking
        assert cli("clients", command, "nope").exit_code == 1


def test_s22_client_id_cannot_equal_a_user(cli: Charter, server: AuthServer) -> None:
    user = create_user(server, "alice")
    for wanted in ("alice", user.id):
        result = cli("clients", "add", "X", "--redirect-uri", "http://127.0.0.1/cb",
                     "--client-id", wanted)  # fmt: skip
        assert result.exit_code == 1
        assert "collides" in result.stderr


def test_update_replaces_name_uris_and_scope(cli: Charter, server: AuthServer) -> None:
    create_client(server, client_id="c1", scope="mcp")
    result = cli(
        "clients", "update", "c1", "--name", "Renamed",
        "--redirect-uri", "https://new.example/cb", "--scope", "",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    updated = load_client(server, "c1")
    assert updated is not None
    assert updated.client_name == "Renamed"
    assert updated.redirect_uris == ["https://new.example/cb"]
    assert updated.scope == ""
    assert cli("clients", "update", "c1").exit_code == 2


def test_disable_revokes_tokens_and_enable_restores_access(
    cli: Charter, server: AuthServer
) -> None:
    create_client(server, client_id="c1")
    issued = issue_grant(server, client_id="c1", subject="someone")
    refused = cli("clients", "disable", "c1")
    assert refused.exit_code == 2
    loaded = load_client(server, "c1")
    assert loaded is not None
    assert not loaded.disabled

    assert cli("clients", "disable", "c1", "--yes").exit_code == 0
    with server.database.transaction() as session:
        row = session.get(Client, "c1")
        grant = session.get(Grant, issued.grant_id)
        token = session.get(AccessToken, issued.jti)
        refresh = session.get(RefreshToken, issued.refresh_hash)
        assert row is not None
        assert row.disabled
        assert grant is not None
        assert grant.revoked_at is not None
        assert token is not None
        assert token.revoked_at is not None
        assert refresh is not None
        assert refresh.revoked_at is not None
    assert "disabled" in cli("clients", "list").stdout

    assert cli("clients", "enable", "c1").exit_code == 0
    enabled = load_client(server, "c1")
    assert enabled is not None
    assert not enabled.disabled


def test_remove_asks_then_deletes(
    cli: Charter, server: AuthServer, terminal: Callable[[], None]
) -> None:
    create_client(server, client_id="c1")
    terminal()
    assert cli("clients", "remove", "c1", input="n\n").exit_code == 1
    assert load_client(server, "c1") is not None
    assert cli("clients", "remove", "c1", input="y\n").exit_code == 0
    assert load_client(server, "c1") is None
    missing = cli("clients", "remove", "c1", "--yes")
    assert missing.exit_code == 1


def test_rotate_secret_replaces_the_hash(cli: Charter, server: AuthServer) -> None:
    _, old_secret = create_client(server, client_id="conf", confidential=True)
    assert old_secret is not None
    result = cli("clients", "rotate-secret", "conf", "--yes", "--json")
    assert result.exit_code == 0, result.output
    new_secret = json.loads(result.stdout)["client_secret"]
    assert new_secret != old_secret
    rotated = load_client(server, "conf")
    assert rotated is not None
    assert rotated.secret_hash == hash_token(new_secret)

    create_client(server, client_id="pub")
    public = cli("clients", "rotate-secret", "pub", "--yes")
    assert public.exit_code == 1
    assert "public" in public.stderr
