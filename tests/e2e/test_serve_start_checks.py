"""``charter serve`` start-up: tool modules beside the working folder import, and a worker whose
key-encryption key cannot open the stored signing keys refuses to start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.support.charter_process import CHARTER, charter_env, run_charter
from tests.support.live import free_port

pytestmark = pytest.mark.e2e

TOOL_MODULE = '''
from resourceserver.mcp import Registry

registry = Registry()


@registry.tool
def shout(text: str) -> str:
    """Repeat the text in capitals."""
    return text.upper()
'''


def test_tools_module_in_the_working_folder_imports(tmp_path: Path) -> None:
    workdir = tmp_path / "project"
    workdir.mkdir()
    (workdir / "cwd_tools_for_test.py").write_text(TOOL_MODULE)
    env = charter_env()
    env.pop("PYTHONPATH", None)
    # The installed console script, as a user runs it (``python -c`` would add the folder itself).
    console_script = [str(Path(sys.executable).with_name("charter"))]
    with run_charter(
        tmp_path / "data",
        "--tools",
        "cwd_tools_for_test",
        env=env,
        cwd=workdir,
        program=console_script,
    ) as running:
        assert httpx.get(running.base_url + "/jwks.json").status_code == 200
        assert "Tool modules loaded: cwd_tools_for_test; tools: " in running.stdout
        assert "shout" in running.stdout


def _serve_with_tools(folder: Path, module: str) -> subprocess.CompletedProcess[str]:
    """``charter serve --tools MODULE`` run in ``folder``, which must refuse to start."""
    result = subprocess.run(
        [
            *CHARTER,
            "serve",
            "--port",
            str(free_port()),
            "--data-dir",
            str(folder / "data"),
            "--tools",
            module,
        ],
        capture_output=True,
        text=True,
        env=charter_env(),
        cwd=folder,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    return result


def test_tools_module_that_cannot_be_imported_says_where_it_looked(tmp_path: Path) -> None:
    result = _serve_with_tools(tmp_path, "no_such_tools_module_here")
    said = " ".join(result.stderr.split())
    assert "cannot import tool module 'no_such_tools_module_here'" in said
    assert "ModuleNotFoundError: No module named 'no_such_tools_module_here'" in said
    # Every sys.path entry, the folder it runs in first, then what to do.
    assert f"in: {tmp_path} (the current folder) " in said
    assert f" {Path(os.__file__).parent} " in said  # the standard library's folder
    assert "Run `charter` in the folder holding no_such_tools_module_here.py" in said
    assert "PYTHONPATH" in said
    assert f"`{sys.executable} -m pip install" in said


def test_tools_module_whose_own_import_fails_says_it_was_found(tmp_path: Path) -> None:
    """Found, but a module it imports is missing: not "looked in" (it was found), but where it
    is, the underlying ImportError and what to install."""
    (tmp_path / "needs_a_missing_package.py").write_text("import no_such_dependency_xyz\n")
    result = _serve_with_tools(tmp_path, "needs_a_missing_package")
    said = " ".join(result.stderr.split())
    assert (
        "tool module 'needs_a_missing_package' was found "
        f"({tmp_path / 'needs_a_missing_package.py'}) but importing it failed: "
        "ModuleNotFoundError: No module named 'no_such_dependency_xyz'"
    ) in said
    assert "Install the package providing 'no_such_dependency_xyz' into this Python" in said
    assert "looked for" not in said


def test_other_key_encryption_key_refuses_to_start(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with run_charter(data_dir):
        pass  # first start: signing key made with the generated key file
    (data_dir / "key-encryption.key").unlink()
    result = subprocess.run(
        [*CHARTER, "serve", "--port", str(free_port()), "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        env=charter_env(CHARTER_KEY_ENCRYPTION_KEY="a-different-secret-0123456789"),
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "cannot decrypt signing key" in result.stderr
    assert "same key-encryption key" in result.stderr


@pytest.mark.postgres
def test_missing_postgresql_database_says_to_create_it(tmp_path: Path) -> None:
    """A PostgreSQL database that was never created: ``charter serve`` says so and how to make
    it (no traceback, nothing about file permissions), before anything says where to
    connect."""
    base = os.environ.get("CHARTER_TEST_POSTGRES_URL")
    if not base:
        pytest.skip("needs PostgreSQL: set CHARTER_TEST_POSTGRES_URL")
    url = make_url(base).set(database="does_not_exist_xyz").render_as_string(hide_password=False)
    result = subprocess.run(
        [*CHARTER, "serve", "--port", str(free_port()), "--data-dir", str(tmp_path / "data")],
        capture_output=True,
        text=True,
        env=charter_env(CHARTER_DATABASE_URL=url),
        timeout=60,
        check=False,
    )
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert 'database "does_not_exist_xyz" does not exist' in result.stderr
    assert "create the database first (`createdb " in result.stderr
    assert " does_not_exist_xyz`" in result.stderr
    assert "permissions" not in result.stderr
    assert "Traceback" not in result.stderr
    assert "Connect your MCP client" not in result.stdout
