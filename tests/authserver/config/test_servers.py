"""The MCP servers file (``CHARTER_MCP_SERVERS_FILE``): what it declares reaches the settings
(resource URLs, names, scopes joined to the supported ones), and mistakes are clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from authserver.config.settings import CharterSettings
from authserver.errors import InvalidTargetError
from authserver.oauth.resources import known_resources, resolve_resource


def settings_with(tmp_path: Path, text: str) -> CharterSettings:
    path = tmp_path / "servers.toml"
    path.write_text(text, encoding="utf-8")
    return CharterSettings(data_dir=tmp_path, mcp_servers_file=str(path))


def test_declared_servers_join_the_settings(tmp_path: Path) -> None:
    settings = settings_with(
        tmp_path,
        '[[server]]\nname = "Echo"\npath = "/echo/mcp"\nscopes = ["echo:write"]\n'
        '[[server]]\nname = "Math"\npath = "/math/mcp"\n',
    )
    assert [server.name for server in settings.mcp_servers] == ["Echo", "Math"]
    assert settings.mcp_servers[0].scopes == ("mcp", "echo:write")
    assert settings.mcp_servers[1].scopes == ("mcp",)
    assert "echo:write" in settings.scopes_supported
    assert "echo:write" not in settings.default_server_scopes
    assert settings.resource_names() == {
        "http://127.0.0.1:8000/mcp": "Charter MCP server",
        "http://127.0.0.1:8000/echo/mcp": "Echo",
        "http://127.0.0.1:8000/math/mcp": "Math",
    }
    assert known_resources(settings)[0] == "http://127.0.0.1:8000/mcp"
    assert resolve_resource(settings, []) == "http://127.0.0.1:8000/mcp"
    assert resolve_resource(settings, ["http://127.0.0.1:8000/math/mcp"]).endswith("/math/mcp")
    with pytest.raises(InvalidTargetError):
        resolve_resource(settings, ["http://127.0.0.1:8000/math/mcp/other"])  # never a prefix


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('[[server]]\nname = "A"\npath = "/mcp"\n', "already served"),
        (
            '[[server]]\nname = "A"\npath = "/a/mcp"\n[[server]]\nname = "B"\npath = "/a/mcp"\n',
            "already served",
        ),
        ('[[server]]\nname = "A"\npath = "a/mcp"\n', "must start with /"),
        ('[[server]]\nname = "A"\npath = "/.well-known/x"\n', "well-known"),
        ('[[server]]\nname = "A"\npath = "/a"\ncolour = "red"\n', "colour"),
        ('[[server]]\nname = "A"\npath = "/a"\nscopes = ["a b"]\n', "scope token"),
        ("[[server]\n", "not valid TOML"),
        ('title = "x"\n', "[[server]] tables only"),
    ],
)
def test_mistakes_in_the_servers_file_are_clear(tmp_path: Path, text: str, reason: str) -> None:
    with pytest.raises(ValidationError) as raised:
        settings_with(tmp_path, text)
    assert reason in str(raised.value)


def test_a_missing_servers_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as raised:
        CharterSettings(data_dir=tmp_path, mcp_servers_file=str(tmp_path / "nope.toml"))
    assert "cannot read the MCP servers file" in str(raised.value)
