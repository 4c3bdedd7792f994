"""``charter consents``: listing and revoking remembered consents with their grants."""

from __future__ import annotations

import json

from authserver.context import AuthServer
from authserver.storage.models import Consent
from tests.support.cli_runner import Charter
from tests.support.factories import create_client, create_user
from tests.support.rows import issue_grant, remember_consent, revoked


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
