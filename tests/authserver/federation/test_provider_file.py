"""``CHARTER_IDENTITY_PROVIDERS_FILE``: parsing and its errors (naming the file, the provider and
the field), and applying it on SQLite and PostgreSQL: providers created and updated by slug and
marked as the file's, dropped ones disabled (their links kept), ``charter idps`` ones untouched."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from sqlalchemy import select

from authserver.context import AuthServer
from authserver.federation.provider_file import (
    ProviderFileError,
    apply_providers,
    load_provider_file,
    parse_providers,
)
from authserver.federation.providers import client_secret
from authserver.storage.models import AuditEvent, IdentityProvider, UserLink
from tests.support.factories import create_user
from tests.support.upstream import add_provider

README = Path(__file__).resolve().parents[3] / "README.md"
CORP = """
[provider.corp]
issuer = "https://login.example.com/realms/acme"
client_id = "charter"
client_secret_env = "CORP_SECRET"
display_name = "Corp SSO"
"""
OTHER = """
[provider.other]
issuer = "https://other.example.com"
client_id = "charter-at-other"
auth_method = "private_key_jwt"
"""


def parse(text: str) -> list[dict[str, object]]:
    return [provider.columns() for provider in parse_providers(text, "idps.toml")]


def rows(server: AuthServer) -> dict[str, IdentityProvider]:
    with server.database.transaction() as session:
        found = session.scalars(select(IdentityProvider)).all()
        session.expunge_all()
    return {row.slug: row for row in found}


def test_the_readme_example_is_a_valid_file() -> None:
    readme = README.read_text(encoding="utf-8")
    section = readme[readme.index("**Providers in a settings file.**") :]
    example = re.search(r"```toml\n(.*?)```", section, re.DOTALL)
    assert example is not None
    corp, partner = parse(example.group(1))
    assert corp["slug"] == "corp" and corp["display_name"] == "Corp SSO"
    assert corp["scopes"] == "openid profile email groups"
    assert corp["required_claims"] == {"dept": "research"}
    assert corp["scope_map"] == {
        "readers": "mcp notes:read",
        "writers": "mcp notes:read notes:write",
    }
    assert corp["allowed_email_domains"] == ["example.com"]
    assert partner["token_endpoint_auth_method"] == "private_key_jwt" and partner["jit"] is False
    assert partner["client_secret_env"] is None


def test_defaults_are_those_of_idps_add() -> None:
    (corp,) = parse(CORP)
    assert corp["token_endpoint_auth_method"] == "client_secret_basic"
    assert corp["scopes"] == "openid profile email"
    assert corp["enabled"] is True and corp["jit"] is True
    assert corp["allowed_email_domains"] == [] and corp["scope_map"] == {}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[provider", "idps.toml is not valid TOML"),
        ("[server]\nname = 'x'", "declare providers as [provider.SLUG] tables only"),
        (CORP.replace("corp]", '"Corp!"]'), "provider 'Corp!': slug: has 1-63"),
        (CORP.replace("corp]", "callback]"), "provider 'callback': slug:"),
        (
            CORP.replace("https://login", "http://login"),
            "provider 'corp': issuer: must be an https",
        ),
        (CORP.replace("acme", "acme?x=1"), "provider 'corp': issuer: has no query"),
        (CORP.replace('client_id = "charter"', ""), "provider 'corp': client_id: Field required"),
        (CORP + 'colour = "red"', "provider 'corp': colour: Extra inputs are not permitted"),
        (CORP + "jit = 'no'", "provider 'corp': jit: Input should be a valid boolean"),
        (CORP + "auth_method = 'basic'", "provider 'corp': auth_method: Input should be"),
        (CORP + 'client_secret = "s3cret"', "provider 'corp': client_secret: secrets are not"),
        (
            CORP.replace('client_secret_env = "CORP_SECRET"', ""),
            "provider 'corp': client_secret_env: required with auth_method 'client_secret_basic'",
        ),
        (
            CORP.replace('"CORP_SECRET"', '"NOT A NAME"'),
            "provider 'corp': client_secret_env: 'NOT A NAME' is not an environment variable",
        ),
        (CORP + "scope_map = { readers = 'mcp' }", "provider 'corp': scope_map: needs scope_claim"),
        (CORP + "required_claims = { dept = '' }", "provider 'corp': required_claims:"),
        (
            CORP + OTHER.replace("other.example.com", "login.example.com/realms/acme"),
            "provider 'other': issuer: already the issuer of 'corp'",
        ),
    ],
)
def test_mistakes_name_the_file_the_provider_and_the_field(text: str, expected: str) -> None:
    with pytest.raises(ProviderFileError) as caught:
        parse_providers(text, "idps.toml")
    assert expected in str(caught.value)
    assert str(caught.value).startswith("idps.toml")


def test_the_file_is_read_as_json_and_its_secret_variable_must_be_set(tmp_path: Path) -> None:
    path = tmp_path / "idps.json"
    path.write_text(json.dumps({"provider": {"corp": {"issuer": "https://idp.example",
                    "client_id": "c", "client_secret_env": "CORP_SECRET"}}}))  # fmt: skip
    (corp,) = load_provider_file(path, {"CORP_SECRET": "x"})
    assert corp.issuer == "https://idp.example"
    with pytest.raises(ProviderFileError) as unset:
        load_provider_file(path, {})
    assert f"the identity providers file {path}: provider 'corp': client_secret_env: the " in str(
        unset.value
    )
    assert "CORP_SECRET is not set" in str(unset.value)
    with pytest.raises(ProviderFileError, match="cannot read the identity providers file"):
        load_provider_file(tmp_path / "missing.toml", {})


def test_apply_creates_updates_disables_and_leaves_cli_providers_alone(
    auth_server: AuthServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CORP_SECRET", "the-corp-secret")
    by_hand = add_provider(auth_server, "https://hand.example", slug="hand", secret="hand-secret")
    applied = apply_providers(auth_server, parse_providers(CORP + OTHER, "f"))
    assert (applied.created, applied.updated, applied.disabled) == (["corp", "other"], [], [])
    made = rows(auth_server)
    assert made["corp"].source == "file" and made["other"].source == "file"
    assert made["hand"].source == "cli" and made["hand"].updated_at == by_hand.updated_at
    assert client_secret(made["corp"], auth_server.keys) == "the-corp-secret"
    assert made["other"].client_key_encrypted  # private_key_jwt: a key was made
    again = apply_providers(auth_server, parse_providers(CORP + OTHER, "f"))
    assert (again.created, again.updated, again.disabled) == ([], [], [])
    assert rows(auth_server)["other"].client_key_encrypted == made["other"].client_key_encrypted

    user = create_user(auth_server, "jdoe")
    with auth_server.database.transaction() as session:
        session.add(UserLink(id="l1", user_id=user.id, issuer=made["other"].issuer,
                             subject="sub-1", created_at=0))  # fmt: skip
    renamed = CORP.replace("Corp SSO", "Corp Single Sign-On") + "jit = false\n"
    changed = apply_providers(auth_server, parse_providers(renamed, "f"))
    assert (changed.created, changed.updated, changed.disabled) == ([], ["corp"], ["other"])
    after = rows(auth_server)
    assert after["corp"].display_name == "Corp Single Sign-On" and after["corp"].jit is False
    assert after["corp"].created_at == made["corp"].created_at
    assert after["other"].enabled is False and after["other"].source == "file-removed"
    assert after["hand"].enabled is True and after["hand"].source == "cli"
    with auth_server.database.transaction() as session:
        assert session.scalars(select(UserLink.subject)).all() == ["sub-1"]
        events = session.scalars(
            select(AuditEvent.event).where(AuditEvent.event.like("idp_%")).order_by(AuditEvent.id)
        ).all()
    assert events == ["idp_created", "idp_created", "idp_updated", "idp_disabled"]

    back = apply_providers(auth_server, parse_providers(renamed + OTHER, "f"))
    assert back.updated == ["other"] and rows(auth_server)["other"].enabled is True
    assert rows(auth_server)["other"].source == "file"


def test_apply_refuses_the_slug_or_issuer_of_a_cli_provider_and_changes_nothing(
    auth_server: AuthServer,
) -> None:
    add_provider(auth_server, "https://login.example.com/realms/acme", slug="hand")
    add_provider(auth_server, "https://corp-by-hand.example", slug="corp")
    with pytest.raises(ProviderFileError) as slug:
        apply_providers(auth_server, parse_providers(OTHER + CORP, "f"), "the file x.toml")
    assert (
        "the file x.toml: provider 'corp': slug: exists already, added with `charter idps add`"
        in (str(slug.value))
    )
    assert set(rows(auth_server)) == {"hand", "corp"}  # 'other' was rolled back
    with pytest.raises(ProviderFileError) as issuer:
        apply_providers(auth_server, parse_providers(CORP.replace("corp]", "acme]"), "f"))
    assert "provider 'acme': issuer: already the issuer of provider 'hand' (from cli)" in str(
        issuer.value
    )
