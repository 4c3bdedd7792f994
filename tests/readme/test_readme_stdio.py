"""The README's STDIO example runs: the SDK client starts ``charter stdio`` (found on PATH, the
default data directory under HOME) and prints the tools and the local principal."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

README = Path(__file__).resolve().parents[2] / "README.md"


def stdio_example() -> str:
    text = README.read_text(encoding="utf-8")
    return text.split("# stdio_client.py\n", 1)[1].split("```", 1)[0]


def test_readme_stdio_example(tmp_path: Path) -> None:
    script = tmp_path / "stdio_client.py"
    script.write_text(stdio_example(), encoding="utf-8")
    bin_dir = str(Path(sys.executable).parent)
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(("CHARTER_", "XDG_"))
    }
    env.update(HOME=str(tmp_path), PATH=bin_dir + os.pathsep + env.get("PATH", ""))
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "'whoami'" in lines[0]
    assert "'client_id': 'charter-stdio'" in lines[1]
    assert "'subject': 'local:" in lines[1]
    assert "'scopes': ['mcp']" in lines[1]
    assert (tmp_path / ".local" / "share" / "charter").is_dir()
