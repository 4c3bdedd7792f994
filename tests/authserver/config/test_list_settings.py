"""List settings in the environment: a JSON list or comma/space-separated words, never a
traceback; configuration the settings loader cannot parse is a usage error (exit 2)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from authserver.cli.main import charter
from authserver.config.settings import CharterSettings, split_list_setting


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("mcp,weather", ("mcp", "weather")),
        ("mcp, weather", ("mcp", "weather")),
        ("mcp weather", ("mcp", "weather")),
        (" mcp ", ("mcp",)),
        ('["mcp", "weather"]', ("mcp", "weather")),
        ("", ()),
    ],
)
def test_split_list_setting_accepts_json_and_separated_words(
    raw: str, expected: tuple[str, ...]
) -> None:
    assert split_list_setting(raw) == expected


def test_split_list_setting_leaves_parsed_values_alone() -> None:
    assert split_list_setting(("a", "b")) == ("a", "b")
    assert split_list_setting(["a"]) == ["a"]


@pytest.mark.parametrize("raw", ["[mcp", '["a",]'])
def test_split_list_setting_rejects_bad_json(raw: str) -> None:
    with pytest.raises(ValueError, match="JSON list"):
        split_list_setting(raw)


def test_comma_separated_list_settings_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHARTER_SCOPES_SUPPORTED", "mcp,weather")
    monkeypatch.setenv("CHARTER_SSRF_ALLOWED_HOSTS", "localhost")
    settings = CharterSettings()
    assert settings.scopes_supported == ("mcp", "weather")
    assert settings.ssrf_allowed_hosts == ("localhost",)


def test_json_list_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHARTER_SCOPES_SUPPORTED", '["mcp", "notes:read"]')
    monkeypatch.setenv("CHARTER_SSRF_ALLOWED_HOSTS", '["localhost:8443", "127.0.0.1"]')
    settings = CharterSettings()
    assert settings.scopes_supported == ("mcp", "notes:read")
    assert settings.ssrf_allowed_hosts == ("localhost:8443", "127.0.0.1")


def test_keyword_list_settings_still_work() -> None:
    settings = CharterSettings(scopes_supported=("mcp", "x"), ssrf_allowed_hosts=["h"])
    assert settings.scopes_supported == ("mcp", "x")
    assert settings.ssrf_allowed_hosts == ("h",)


def test_cli_accepts_comma_separated_scopes(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        charter,
        ["--data-dir", str(tmp_path), "users", "list"],
        env={"CHARTER_SCOPES_SUPPORTED": "mcp,weather", "CHARTER_SSRF_ALLOWED_HOSTS": "localhost"},
    )
    assert result.exit_code == 0, result.output


def test_cli_reports_a_malformed_json_list_as_invalid_configuration(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        charter,
        ["--data-dir", str(tmp_path), "users", "list"],
        env={"CHARTER_SCOPES_SUPPORTED": '["mcp"'},
    )
    assert result.exit_code == 2
    assert "Error: invalid configuration" in result.stderr
    assert "scopes_supported" in result.stderr
    assert "Traceback" not in result.output


class _UndecodableSettings(CharterSettings):
    """A list field left to pydantic-settings' JSON decoding, which raises SettingsError."""

    extra_list: tuple[str, ...] = ()


def test_cli_reports_a_settings_source_error_as_invalid_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("authserver.cli.context.CharterSettings", _UndecodableSettings)
    result = CliRunner().invoke(
        charter,
        ["--data-dir", str(tmp_path), "users", "list"],
        env={"CHARTER_EXTRA_LIST": "a,b"},
    )
    assert result.exit_code == 2
    assert "Error: invalid configuration" in result.stderr
    assert "extra_list" in result.stderr


def test_readme_list_examples_mean_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text(encoding="utf-8")
    examples = re.findall(r"`CHARTER_SCOPES_SUPPORTED=('?)(.+?)\1`", readme)
    assert len(examples) == 2
    parsed = set()
    for _quote, raw in examples:
        monkeypatch.setenv("CHARTER_SCOPES_SUPPORTED", raw)
        parsed.add(CharterSettings().scopes_supported)
    assert parsed == {("mcp", "notes:read", "notes:write", "weather:read")}
