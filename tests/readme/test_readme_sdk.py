"""The README's Python SDK example completes the whole flow against a real ``charter serve``:
discovery, registration, login and consent (a headless user in place of the browser), a tool
call."""

from __future__ import annotations

import asyncio
import threading
import webbrowser
from pathlib import Path

import httpx
import pytest

from tests.support.charter_process import run_charter
from tests.support.headless import HeadlessUser
from tests.support.live import free_port

pytestmark = pytest.mark.e2e

README = Path(__file__).resolve().parents[2] / "README.md"


def sdk_example() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("```python\nimport asyncio, webbrowser") + len("```python\n")
    return text[start : text.index("```", start)]


async def test_readme_python_sdk_example(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    source = sdk_example()
    assert source.rstrip().endswith("asyncio.run(main())")
    port = str(free_port())
    with run_charter(tmp_path / "data") as charter:
        assert charter.admin_password is not None
        user = HeadlessUser("admin", charter.admin_password)
        errors: list[BaseException] = []

        def browser(url: str) -> bool:
            """The person at the browser: logs in, approves, follows the redirect home."""

            async def flow() -> None:
                target = await user.authorize(url)
                async with httpx.AsyncClient(timeout=30) as http:
                    await http.get(str(target))
                await user.aclose()

            def run() -> None:
                try:
                    asyncio.run(flow())
                except BaseException as exc:  # reported by the assertion below
                    errors.append(exc)

            threading.Thread(target=run, daemon=True).start()
            return True

        monkeypatch.setattr(webbrowser, "open", browser)
        adapted = (
            source.replace("http://127.0.0.1:8000/mcp", charter.mcp_url)
            .replace("53682", port)
            .replace("asyncio.run(main())", "")
        )
        namespace: dict[str, object] = {"__name__": "readme_sdk_example"}
        exec(compile(adapted, "README.md", "exec"), namespace)  # noqa: S102 - our own README
        try:
            main = namespace["main"]
            assert callable(main)
            await asyncio.wait_for(main(), timeout=120)
        finally:
            server = namespace.get("callback_server")
            if server is not None:
                server.server_close()  # type: ignore[attr-defined]
        assert errors == []
    printed = capsys.readouterr().out
    assert "dcr_" in printed
    assert "'scopes': ['mcp']" in printed
