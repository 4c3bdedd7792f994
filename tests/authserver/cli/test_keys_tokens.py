"""``charter keys``, ``charter tokens`` and ``charter consents``."""

from __future__ import annotations

import json

from authserver.context import AuthServer
from authserver.storage.models import AccessToken, Consent, Grant
from tests.support.cli_runner import Charter
from tests.support.factories import create_client, create_user
from tests.support.rows import issue_grant, remember_consent


def test_keys_rotate_publishes_the_new_key_before_it_signs(
    cli: Charter, server: AuthServer
) -> None:
    assert cli("keys", "list", "--json").stdout.strip() == "[]"
    server.keys.ensure_signing_key()
    old_kid = json.loads(cli("keys", "list", "--json").stdout)[0]["kid"]
    rotated = cli("keys", "rotate", "--json")
    assert rotated.exit_code == 0, rotated.output
    new = json.loads(rotated.stdout)
    assert new["status"] == "pending"
    assert new["activates_at"] > new["created_at"]
    listed = {key["kid"]: key for key in json.loads(cli("keys", "list", "--json").stdout)}
    assert listed[old_kid]["status"] == "active"
    assert listed[old_kid]["retired_at"] == new["activates_at"]
    table = cli("keys", "list").stdout.splitlines()
    assert table[0].split()[:3] == ["KID", "ALG", "STATUS"]


def test_keys_retire(cli: Charter, server: AuthServer) -> None:
    no_delay = {"CHARTER_KEY_PUBLISH_AHEAD_SECONDS": "0"}
    server.keys.ensure_signing_key()
    old_kid = json.loads(cli("keys", "list", "--json").stdout)[0]["kid"]
    new_kid = json.loads(cli("keys", "rotate", "--json", env=no_delay).stdout)["kid"]
    listed = {key["kid"]: key for key in json.loads(cli("keys", "list", "--json").stdout)}
    assert listed[new_kid]["status"] == "active"
    assert listed[old_kid]["status"] == "retired"
    assert listed[old_kid]["expires_at"] is not None

    assert cli("keys", "retire", "--", old_kid).exit_code == 2  # no TTY, no --yes
    # "--" lets a kid start with "-" (kids are base64url thumbprints)
    retired = cli("keys", "retire", "--immediately", "--yes", "--json", "--", old_kid)
    assert retired.exit_code == 0, retired.output
    assert json.loads(retired.stdout)["status"] == "expired"
    server.keys.invalidate_cache()
    assert [key["kid"] for key in server.keys.jwks()["keys"]] == [new_kid]
    assert cli("keys", "retire", "no-such-kid", "--yes").exit_code == 1


def test_keys_rotate_refuses_a_different_key_encryption_key(
    cli: Charter, server: AuthServer
) -> None:
    server.keys.ensure_signing_key()
    other = {"CHARTER_KEY_ENCRYPTION_KEY": "not-the-servers-secret"}
    result = cli("keys", "rotate", env=other)
    assert result.exit_code == 1
    assert "CHARTER_KEY_ENCRYPTION_KEY" in result.stderr
    assert len(json.loads(cli("keys", "list", "--json").stdout)) == 1


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


def revoked(server: AuthServer, issued_jti: str, grant_id: str) -> tuple[bool, bool]:
    with server.database.transaction() as session:
        token = session.get(AccessToken, issued_jti)
        grant = session.get(Grant, grant_id)
        assert token is not None
        assert grant is not None
        return token.revoked_at is not None, grant.revoked_at is not None


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


def test_consents_list_and_revoke(cli: Charter, server: AuthServer) -> None:
    user = create_user(server, "alice")
    create_client(server, client_id="c1")
    consent_id = remember_consent(server, user_id=user.id, client_id="c1")
    issued = issue_grant(server, client_id="c1", subject=user.id)
    listed = json.loads(cli("consents", "list", "--json").stdout)
    assert [(item["id"], item["user"], item["status"]) for item in listed] == [
        (consent_id, "alice", "active")
    ]
    assert cli("consents", "revoke").exit_code == 2
    result = cli("consents", "revoke", consent_id, "--yes", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"revoked_consents": 1, "revoked_grants": 1}
    with server.database.transaction() as session:
        consent = session.get(Consent, consent_id)
        assert consent is not None
        assert consent.revoked_at is not None
    assert revoked(server, issued.jti, issued.grant_id) == (True, True)
    assert json.loads(cli("consents", "list", "--json").stdout) == []
    assert len(json.loads(cli("consents", "list", "--all", "--json").stdout)) == 1
    assert cli("consents", "revoke", "--user", "alice", "--yes").exit_code == 1


def test_s63_retire_immediately_during_a_pending_rotation_keeps_a_signing_key(
    cli: Charter, server: AuthServer
) -> None:
    server.keys.ensure_signing_key()
    old_kid = json.loads(cli("keys", "list", "--json").stdout)[0]["kid"]
    assert cli("keys", "rotate").exit_code == 0  # the new key is pending for 120 s
    retired = cli("keys", "retire", "--immediately", "--yes", "--", old_kid)
    assert retired.exit_code == 0, retired.output
    server.keys.invalidate_cache()
    signing = server.keys.signing_key()
    assert signing.kid != old_kid
    assert signing.kid in {key["kid"] for key in server.keys.jwks()["keys"]}
