"""Settings of resource-server-only mode: the issuer's shape and the introspection credentials."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from authserver.config.settings import CharterSettings
from authserver.deployment import external_resource_settings, external_verifier


def test_the_external_issuer_is_what_the_resource_server_trusts(tmp_path: Path) -> None:
    settings = CharterSettings(
        authorization_server="https://login.example.com/realms/acme",
        issuer="https://mcp.example.com",
        data_dir=tmp_path,
    )
    resource = external_resource_settings(settings)
    assert settings.resource_only
    assert resource.issuer == "https://login.example.com/realms/acme"
    assert resource.resource_url == "https://mcp.example.com/mcp"
    assert "RS256" in resource.allowed_algorithms


@pytest.mark.parametrize(
    "values",
    [
        {"authorization_server": "http://login.example.com"},  # plain http outside loopback
        {"authorization_server": "https://login.example.com?x=1"},
        {"authorization_server": "https://login.example.com", "introspection_client_id": "rs"},
        {"introspection_client_id": "rs", "introspection_client_secret": "s" * 20},
        {"authorization_server": "https://login.example.com", "external_token_algorithms": "HS256"},
    ],
    ids=["http", "query", "id-without-secret", "introspection-without-issuer", "hmac"],
)
def test_unusable_combinations_are_refused_at_start(values: dict[str, str], tmp_path: Path) -> None:
    try:
        settings = CharterSettings(data_dir=tmp_path, **values)  # type: ignore[arg-type]
        external_verifier(settings, external_resource_settings(settings))
    except (ValidationError, ValueError):
        return
    pytest.fail(f"accepted {values}")
