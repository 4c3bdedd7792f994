"""The one settings model: every setting is a ``charter serve`` option and a ``CHARTER_*``
variable, workers receive the same values, and the MCP server's settings and the transport's
options are derived from it by field name."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import click
import pytest

from authserver.cli.serve import serve_command
from authserver.config.options import env_name, flag_of
from authserver.config.settings import CharterSettings
from authserver.deployment import resource_settings_for, transport_options_for
from resourceserver.mcp.transport import TransportOptions
from resourceserver.settings import ResourceServerSettings

SECRETS = {"key_encryption_key", "introspection_client_secret"}


def serve_options() -> dict[str, click.Option]:
    return {
        str(param.name): param for param in serve_command.params if isinstance(param, click.Option)
    }


def test_every_setting_but_secrets_is_a_serve_option() -> None:
    options = serve_options()
    assert set(options) == set(CharterSettings.model_fields) - SECRETS
    for name, option in options.items():
        field = CharterSettings.model_fields[name]
        assert flag_of(name, field) in option.opts
        assert env_name(name) in (option.help or ""), name
        assert option.multiple or option.default is None, name  # the model decides defaults


def test_serve_options_keep_their_documented_names() -> None:
    opts = {opt for option in serve_options().values() for opt in option.opts}
    assert {"--ssrf-allow-host", "--tools", "--forwarded-allow-ips", "--ssrf-allow-http"} <= opts
    assert "--key-encryption-key" not in opts


def test_workers_receive_the_same_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("CHARTER_"):
            monkeypatch.delenv(key)
    given = CharterSettings(
        issuer="https://mcp.example.test",
        data_dir=tmp_path,
        tools=("a.b", "c.d"),
        ssrf_allowed_hosts=("localhost:8443",),
        ssrf_allow_http=True,
        access_token_ttl=120,
        graceful_timeout=2.5,
        forwarded_allow_ips="10.0.0.0/8",
        log_format="json",
    )
    for key, value in given.environment().items():
        monkeypatch.setenv(key, value)
    received = CharterSettings()
    assert received.model_dump() == given.model_dump()
    assert "CHARTER_KEY_ENCRYPTION_KEY" not in given.environment()


def test_the_issuer_defaults_to_where_serve_listens() -> None:
    assert CharterSettings(host="::1", port=9000).issuer == "http://[::1]:9000"
    assert CharterSettings(host="0.0.0.0").issuer == "http://127.0.0.1:8000"
    assert CharterSettings(issuer="https://mcp.example.test/").issuer == "https://mcp.example.test"
    with pytest.raises(ValueError, match=r"--issuer is required when listening on 10\.0\.0\.5"):
        CharterSettings(host="10.0.0.5")


def test_the_mcp_server_gets_every_setting_it_shares_by_name() -> None:
    settings = CharterSettings(
        issuer="https://mcp.example.test",
        resource_name="Notes",
        scopes_supported=("mcp", "weather:read"),
        leeway_seconds=7,
    )
    derived = resource_settings_for(settings)
    shared = set(ResourceServerSettings.model_fields) & set(CharterSettings.model_fields)
    assert shared >= {"issuer", "resource_url", "resource_name", "scopes_supported"}
    for name in shared:
        assert getattr(derived, name) == getattr(settings, name), name
    assert derived.resource_url == "https://mcp.example.test/mcp"


def test_the_transport_gets_every_setting_it_shares_by_name() -> None:
    settings = CharterSettings()
    options = transport_options_for(settings)
    for field in dataclasses.fields(TransportOptions):
        if field.name in CharterSettings.model_fields:
            assert getattr(options, field.name) == getattr(settings, field.name), field.name
        else:
            assert getattr(options, field.name) == field.default, field.name
