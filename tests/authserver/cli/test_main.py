"""The ``charter`` group: settings from options and environment, exit codes, errors, tables,
``charter db``, and the real console script in a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from sqlalchemy.engine import make_url

from authserver.cli.context import CliOptions, build_settings
from authserver.cli.main import charter
from authserver.cli.output import render_table
from authserver.storage.schema import head_revision
from tests.support.cli_runner import Charter


def test_help_lists_every_group() -> None:
    result = CliRunner().invoke(charter, ["--help"])
    assert result.exit_code == 0
    for name in ("audit", "clients", "consents", "db", "keys", "serve", "tokens", "users"):
        assert f"  {name} " in result.stdout


def test_unknown_command_is_a_usage_error() -> None:
    assert CliRunner().invoke(charter, ["frobnicate"]).exit_code == 2


def test_group_options_win_over_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHARTER_DATABASE_URL", "sqlite:///from-env.db")
    monkeypatch.setenv("CHARTER_ACCESS_TOKEN_TTL", "120")
    with click.Context(charter, obj=CliOptions(database_url="sqlite:///from-option.db")) as ctx:
        settings = build_settings(ctx)
    assert settings.database_url == "sqlite:///from-option.db"
    assert settings.access_token_ttl == 120
    with click.Context(charter, obj=CliOptions(data_dir=tmp_path)) as ctx:
        assert build_settings(ctx).database_url == "sqlite:///from-env.db"
    monkeypatch.delenv("CHARTER_DATABASE_URL")
    with click.Context(charter, obj=CliOptions(data_dir=tmp_path)) as ctx:
        assert build_settings(ctx).database_url == f"sqlite:///{tmp_path / 'charter.db'}"


def test_invalid_configuration_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        charter,
        ["--data-dir", str(tmp_path), "users", "list"],
        env={"CHARTER_ISSUER": "http://mcp.example.com"},
    )
    assert result.exit_code == 2
    assert "invalid configuration" in result.stderr
    assert "https" in result.stderr


def test_unreachable_database_fails_with_a_hint_and_no_password(tmp_path: Path) -> None:
    url = "postgresql+psycopg://postgres:topsecret@127.0.0.1:1/charter?connect_timeout=2"
    result = CliRunner().invoke(
        charter, ["--data-dir", str(tmp_path), "--database-url", url, "users", "list"]
    )
    assert result.exit_code == 1
    assert "--database-url" in result.stderr
    assert "topsecret" not in result.output


@pytest.mark.postgres
def test_missing_postgresql_database_gets_a_createdb_hint(tmp_path: Path) -> None:
    base = os.environ.get("CHARTER_TEST_POSTGRES_URL")
    if not base:
        pytest.skip("needs PostgreSQL: set CHARTER_TEST_POSTGRES_URL")
    url = base.rsplit("/", 1)[0] + "/charter_never_created_db"
    result = CliRunner().invoke(
        charter, ["--data-dir", str(tmp_path), "--database-url", url, "db", "upgrade"]
    )
    assert result.exit_code == 1
    assert "createdb " in result.stderr
    assert " charter_never_created_db`" in result.stderr
    assert "creates Charter's tables, not the database" in result.stderr


@pytest.mark.postgres
def test_missing_postgresql_database_from_the_environment_names_it_and_its_server(
    tmp_path: Path,
) -> None:
    """``CHARTER_DATABASE_URL`` (not ``--database-url``) names a database never created: the
    error names that URL and the ``createdb`` command for its host, port and role."""
    base = os.environ.get("CHARTER_TEST_POSTGRES_URL")
    if not base:
        pytest.skip("needs PostgreSQL: set CHARTER_TEST_POSTGRES_URL")
    url = make_url(base).set(database="does_not_exist_xyz")
    result = CliRunner().invoke(
        charter,
        ["--data-dir", str(tmp_path), "db", "upgrade"],
        env={"CHARTER_DATABASE_URL": url.render_as_string(hide_password=False)},
    )
    assert result.exit_code == 1
    assert f"database error on {url.render_as_string(hide_password=True)}:" in result.stderr
    expected = ["createdb"]
    for flag, value in (("-h", url.host), ("-p", url.port), ("-U", url.username)):
        if value is not None:
            expected += [flag, str(value)]
    assert f"`{' '.join([*expected, 'does_not_exist_xyz'])}`" in result.stderr
    assert "Traceback" not in result.output


def test_render_table_aligns_columns() -> None:
    text = render_table(["A", "LONG HEADER"], [["wide value", "x"], ["b", ""]])
    assert text.splitlines() == ["A           LONG HEADER", "wide value  x", "b"]


def test_db_current_then_upgrade(tmp_path: Path) -> None:
    fresh = Charter(tmp_path / "data", f"sqlite:///{tmp_path / 'fresh.db'}")
    before = fresh("db", "current", "--json")
    assert before.exit_code == 0, before.output
    assert json.loads(before.stdout) == {
        "database": f"sqlite:///{tmp_path / 'fresh.db'}",
        "current": None,
        "head": head_revision(),
        "up_to_date": False,
    }
    assert "charter db upgrade" in fresh("db", "current").stdout
    upgraded = fresh("db", "upgrade")
    assert upgraded.exit_code == 0
    assert f"to revision {head_revision()}" in upgraded.stdout
    assert "already at revision" in fresh("db", "upgrade").stdout
    assert json.loads(fresh("db", "current", "--json").stdout)["up_to_date"] is True


def console_script() -> str:
    found = shutil.which("charter", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.skip("the charter console script is not installed: pip install -e .")
    return found


def test_console_script_adds_and_lists_users(tmp_path: Path) -> None:
    """The installed ``charter`` program, as an operator's script would run it."""
    script = console_script()
    env = {key: value for key, value in os.environ.items() if not key.startswith("CHARTER_")}
    env["CHARTER_DATA_DIR"] = str(tmp_path / "data")

    def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [script, *args], input=stdin, capture_output=True, text=True, env=env, timeout=120
        )

    added = run("users", "add", "bob", "--password-stdin", stdin="a long password\n")
    assert added.returncode == 0, added.stderr
    listed = run("users", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [user["username"] for user in json.loads(listed.stdout)] == ["bob"]
    assert (tmp_path / "data" / "charter.db").exists()

    refused = run("users", "remove", "bob")
    assert refused.returncode == 2
    assert "--yes" in refused.stderr
    assert run("users", "remove", "bob", "--yes").returncode == 0
    assert json.loads(run("users", "list", "--json").stdout) == []
    missing = run("clients", "show", "nope")
    assert missing.returncode == 1
    assert missing.stderr.startswith("Error: no client")
