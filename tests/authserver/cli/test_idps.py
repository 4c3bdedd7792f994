"""``charter idps``: add, list, show, update, link and remove upstream OpenID Providers; the
client secret is stored encrypted (usable, never printed) or named as an environment variable."""

from __future__ import annotations

import json

from sqlalchemy import select

from authserver.context import AuthServer
from authserver.federation.providers import client_secret
from authserver.storage.models import IdentityProvider, UserLink
from tests.support.cli_runner import Charter
from tests.support.factories import create_user

ISSUER = "https://login.example.com/realms/corp"
SECRET = "an-upstream-client-secret"


def add(cli: Charter, *extra: str, slug: str = "corp") -> dict[str, object]:
    result = cli(
        "idps", "add", slug, "--issuer", ISSUER, "--client-id", "charter", "--name", "Corp SSO",
        "--client-secret-stdin", "--json", *extra, input=SECRET + "\n",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    record: dict[str, object] = json.loads(result.output)
    return record


def test_add_stores_the_secret_encrypted_and_prints_the_redirect_uri(
    cli: Charter, server: AuthServer
) -> None:
    record = add(cli, "--allow-domain", "example.com", "--require-claim", "dept=research")
    assert record["client_secret"] == "stored encrypted"
    assert str(record["redirect_uri"]).endswith("/login/idp/callback")
    assert record["scopes"] == "openid profile email"
    assert SECRET not in json.dumps(record)
    with server.database.transaction() as session:
        row = session.scalars(select(IdentityProvider)).one()
        assert SECRET not in (row.client_secret_encrypted or "")
        assert client_secret(row, server.keys) == SECRET
        assert row.allowed_email_domains == ["example.com"]
        assert row.required_claims == {"dept": "research"}
    listed = cli("idps", "list")
    assert listed.exit_code == 0
    assert "corp" in listed.output and "just in time" in listed.output
    shown = cli("idps", "show", "corp")
    assert ISSUER in shown.output and SECRET not in shown.output


def test_bad_input_is_refused_clearly(cli: Charter) -> None:
    add(cli)
    again = cli("idps", "add", "corp", "--issuer", "https://other.example", "--client-id", "x")
    assert again.exit_code == 1 and "exists already" in again.output
    same_issuer = cli("idps", "add", "other", "--issuer", ISSUER, "--client-id", "x")
    assert same_issuer.exit_code == 1 and "already provider 'corp'" in same_issuer.output
    plain = cli("idps", "add", "p", "--issuer", "http://idp.example.com", "--client-id", "x")
    assert plain.exit_code == 2 and "https" in plain.output
    reserved = cli("idps", "add", "callback", "--issuer", "https://a.example", "--client-id", "x")
    assert reserved.exit_code == 2 and "callback" in reserved.output
    rule = cli("idps", "add", "r", "--issuer", "https://r.example", "--client-id", "x",
               "--require-claim", "novalue")  # fmt: skip
    assert rule.exit_code == 2 and "claim=value" in rule.output
    missing = cli("idps", "show", "nope")
    assert missing.exit_code == 1 and "idps list" in missing.output


def test_update_link_and_remove(cli: Charter, server: AuthServer) -> None:
    add(cli)
    updated = cli(
        "idps", "update", "corp", "--no-jit", "--client-secret-env", "CORP_SECRET",
        "--scope-claim", "groups", "--map-scope", "readers=mcp notes:read", "--json",
    )  # fmt: skip
    assert updated.exit_code == 0, updated.output
    record = json.loads(updated.output)
    assert record["accounts"] is False and record["client_secret"] == "from $CORP_SECRET"
    assert record["scope_map"] == {"readers": "mcp notes:read"}
    user = create_user(server, "carol")
    linked = cli("idps", "link", "corp", "carol", "--subject", "sub-123")
    assert linked.exit_code == 0, linked.output
    twice = cli("idps", "link", "corp", "carol", "--subject", "sub-123")
    assert twice.exit_code == 1
    with server.database.transaction() as session:
        link = session.scalars(select(UserLink)).one()
        assert (link.user_id, link.issuer, link.subject) == (user.id, ISSUER, "sub-123")
    refused = cli("idps", "remove", "corp")
    assert refused.exit_code == 2 and "--yes" in refused.output
    removed = cli("idps", "remove", "corp", "--yes")
    assert removed.exit_code == 0 and "1 account link" in removed.output
    with server.database.transaction() as session:
        assert session.scalars(select(UserLink)).all() == []
    assert "no identity providers" in cli("idps", "list").output


def test_private_key_jwt_makes_a_key_and_prints_only_its_public_half(
    cli: Charter, server: AuthServer
) -> None:
    result = cli(
        "idps", "add", "okta", "--issuer", "https://org.okta.example", "--client-id", "charter",
        "--auth-method", "private_key_jwt", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    record = json.loads(result.output)
    (key,) = record["public_jwks"]["keys"]
    assert key["kty"] == "RSA" and key["alg"] == "RS256" and "d" not in key
    with server.database.transaction() as session:
        row = session.scalars(select(IdentityProvider)).one()
        assert row.token_endpoint_auth_method == "private_key_jwt"
        assert row.client_key_encrypted and '"d"' not in row.client_key_encrypted
    shown = cli("idps", "show", "okta")
    assert key["kid"] in shown.output and '"d"' not in shown.output


def test_removing_a_user_removes_their_links(cli: Charter, server: AuthServer) -> None:
    add(cli)
    create_user(server, "dave")
    assert cli("idps", "link", "corp", "dave", "--subject", "sub-dave").exit_code == 0
    assert cli("users", "remove", "dave", "--yes").exit_code == 0
    with server.database.transaction() as session:
        assert session.scalars(select(UserLink)).all() == []  # ON DELETE CASCADE
