"""The README's by-hand HTTP+SSE example (MCP 2024-11-05 transport) runs against a real
``charter serve`` with a token from Charter's OAuth flow."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path

import pytest

from tests.support.charter_process import run_charter
from tests.support.oauth_flow import obtain_tokens

pytestmark = pytest.mark.e2e

README = Path(__file__).resolve().parents[2] / "README.md"
START = "```python\nimport json, os\n\nimport httpx\n"


def sse_example() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.index("## Older clients: HTTP+SSE (2024-11-05)")
    start = text.index(START, section) + len("```python\n")
    return text[start : text.index("```", start)]


async def test_readme_sse_example_lists_and_calls_tools(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    source = sse_example()
    assert 'BASE = "http://127.0.0.1:8000"' in source
    with run_charter(tmp_path / "data") as charter:
        tokens = await obtain_tokens(charter, "mcp")
        monkeypatch.setenv("TOKEN", tokens.access_token)
        adapted = source.replace('BASE = "http://127.0.0.1:8000"', f"BASE = {charter.base_url!r}")
        code = compile(adapted, "README.md", "exec")
        namespace: dict[str, object] = {"__name__": "readme_sse_example"}
        await asyncio.wait_for(asyncio.to_thread(exec, code, namespace), timeout=60)
    printed = capsys.readouterr().out.splitlines()
    assert ast.literal_eval(printed[0]) == ["whoami"]
    me = ast.literal_eval(printed[1])
    assert me["client_id"] == tokens.client_id
    assert me["scopes"] == ["mcp"]
