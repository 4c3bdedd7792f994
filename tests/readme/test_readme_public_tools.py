"""S83 end to end: the README's public-tools module served by ``charter serve``; the official MCP
Python SDK client lists and calls the public tool with no OAuth at all, then calling the protected
tool makes it sign in (401 with the challenge, discovery, registration, login, consent) and the
call succeeds; afterwards it sees every tool."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.charter_process import run_charter
from tests.support.headless import HeadlessUser
from tests.support.sdk_client import MemoryStorage, Observed, connect, make_provider

pytestmark = pytest.mark.e2e

README = Path(__file__).resolve().parents[2] / "README.md"


def public_tools_example() -> str:
    text = README.read_text(encoding="utf-8")
    return text.split("# public_tools.py\n", 1)[1].split("```", 1)[0]


async def test_s83_sdk_calls_a_public_tool_anonymously_then_signs_in(tmp_path: Path) -> None:
    (tmp_path / "public_tools.py").write_text(public_tools_example(), encoding="utf-8")
    with run_charter(tmp_path / "data", "--tools", "public_tools", cwd=tmp_path) as charter:
        assert charter.admin_password is not None
        user = HeadlessUser("admin", charter.admin_password)
        storage = MemoryStorage()
        observed = Observed()
        try:
            async with connect(charter, make_provider(charter, user, storage), observed) as client:
                listed = {tool.name for tool in (await client.list_tools()).tools}
                assert listed == {"echo"}
                echoed = await client.call_tool("echo", {"text": "Hello"})
                assert not echoed.is_error
                assert echoed.content[0].text == "Hello"  # type: ignore[union-attr]
                assert user.authorize_urls == []  # no OAuth so far
                assert storage.tokens is None
                assert 401 not in observed.statuses("/mcp")

                whispered = await client.call_tool("whisper", {"text": "HELLO"})
                assert not whispered.is_error, whispered.content
                assert whispered.content[0].text.startswith("hello (for ")  # type: ignore[union-attr]
                assert len(user.authorize_urls) == 1
                assert storage.tokens is not None
                refused = [
                    challenge
                    for _m, path, status, challenge in observed.exchanges
                    if path == "/mcp" and status == 401
                ]
                assert refused and 'scope="mcp"' in refused[0]
                assert "error=" not in refused[0]
                listed = {tool.name for tool in (await client.list_tools()).tools}
                assert {"echo", "whisper", "whoami"} <= listed
        finally:
            await user.aclose()
