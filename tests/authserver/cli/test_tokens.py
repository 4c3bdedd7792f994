"""``charter tokens``: live tokens listed without secrets; revoking by jti, grant, client or user;
purging."""

from __future__ import annotations

import json

from authserver.context import AuthServer
from authserver.storage.models import AccessToken
from tests.support.cli_runner import Charter
from tests.support.factories import create_client, create_user
from tests.support.rows import issue_grant, revoked


def test_tokens_list_shows_live_tokens_without_secrets(cli: Charter, server: AuthServer) -> None:
    user = create_user(server, "alice")
    create_client(server, client_id="c1")
    create_client(server, client_id="other")
    issued = issue_grant(server, client_id="c1", subject=user.id)
    tokens = json.loads(cli("tokens", "list", "--json").stdout)
    assert [token["jti"] for token in tokens] == [issued.jti]
    assert tokens[0]["user"] == "alice"
    assert issued.refresh_hash not in cli("tokens", "list", "--grants", "--json").stdout
    grants = json.loads(cli("tokens", "list", "--grants", "--user", "alice", "--json").stdout)
    assert [grant["id"] for grant in grants] == [issued.grant_id]
    assert json.loads(cli("tokens", "list", "--client", "other", "--json").stdout) == []
    table = cli("tokens", "list").stdout
    assert table.splitlines()[0].split()[:3] == ["JTI", "CLIENT", "USER"]


def test_tokens_revoke_by_jti_grant_client_and_user(cli: Charter, server: AuthServer) -> None:
    user = create_user(server, "alice")
    create_client(server, client_id="c1")
    one = issue_grant(server, client_id="c1", subject=user.id)
    assert cli("tokens", "revoke", "--jti", one.jti).exit_code == 2  # needs --yes
    assert cli("tokens", "revoke", "--yes").exit_code == 2  # needs a target
    assert cli("tokens", "revoke", "--jti", one.jti, "--yes").exit_code == 0
    assert revoked(server, one.jti, one.grant_id) == (True, False)
    again = cli("tokens", "revoke", "--jti", one.jti, "--yes")
    assert again.exit_code == 1
    assert "charter tokens list" in again.stderr

    assert cli("tokens", "revoke", "--grant", one.grant_id, "--yes").exit_code == 0
    assert revoked(server, one.jti, one.grant_id) == (True, True)
    assert cli("tokens", "revoke", "--grant", "missing", "--yes").exit_code == 1

    two = issue_grant(server, client_id="c1", subject=user.id)
    result = cli("tokens", "revoke", "--client", "c1", "--yes", "--json")
    assert json.loads(result.stdout)["revoked"] == 1
    assert revoked(server, two.jti, two.grant_id) == (True, True)

    three = issue_grant(server, client_id="c1", subject=user.id)
    assert cli("tokens", "revoke", "--user", "alice", "--yes").exit_code == 0
    assert revoked(server, three.jti, three.grant_id) == (True, True)
    assert cli("tokens", "list", "--json").stdout.strip() == "[]"


def test_tokens_purge_deletes_expired_rows(cli: Charter, server: AuthServer) -> None:
    create_client(server, client_id="c1")
    issued = issue_grant(server, client_id="c1", subject="someone")
    with server.database.transaction() as session:
        token = session.get(AccessToken, issued.jti)
        assert token is not None
        token.expires_at = 1
    assert cli("tokens", "purge").exit_code == 2
    result = cli("tokens", "purge", "--yes", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["total"] >= 1
    with server.database.transaction() as session:
        assert session.get(AccessToken, issued.jti) is None
