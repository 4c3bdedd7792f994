"""The README's shell commands work in the Quick start's virtualenv, which is never on PATH
by itself: bare ``pip``/``charter`` come only after an explicit activation step."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
BARE = re.compile(r"^(pip|charter|alembic|pytest)\b")


def test_quick_start_tells_to_activate_the_venv() -> None:
    text = README.read_text(encoding="utf-8")
    quick = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert "`. .venv/bin/activate`" in quick


def test_shell_blocks_activate_the_venv_before_bare_commands() -> None:
    blocks = re.findall(r"```sh\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.DOTALL)
    assert blocks
    for block in blocks:
        activated = False
        for line in block.splitlines():
            command = line.strip()
            if command.startswith(". .venv/bin/activate"):
                activated = True
            assert activated or not BARE.match(command), command
