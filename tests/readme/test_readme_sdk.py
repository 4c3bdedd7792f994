"""The README's Python SDK example completes the whole flow against a real ``charter serve``:
discovery, registration, login and consent (a headless user in place of the browser), a tool
call. Run again, it reuses the registration (and tokens) it keeps on disk; without a browser it
prints the URL to open; its callback listener answers 404 to other paths (a browser's
``/favicon.ico``) and keeps waiting for the redirect."""

from __future__ import annotations

import asyncio
import json
import re
import stat
import subprocess
import threading
import webbrowser
from pathlib import Path

import httpx
import pytest

from tests.support.charter_process import CharterProcess, charter_env, run_charter
from tests.support.headless import HeadlessUser
from tests.support.live import free_port

pytestmark = pytest.mark.e2e

README = Path(__file__).resolve().parents[2] / "README.md"
#: Where the example keeps its registration and tokens, under the home folder.
STORE_NAME = ".my-script-charter.json"


def sdk_example() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("```python\nimport asyncio, json, os, webbrowser") + len("```python\n")
    return text[start : text.index("```", start)]


async def run_example(source: str, charter: CharterProcess, port: int) -> None:
    """One run of the example, as ``python script.py`` would (fresh module, fresh listener)."""
    adapted = (
        source.replace("http://127.0.0.1:8000/mcp", charter.mcp_url)
        .replace("53682", str(port))
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


def client_ids(printed: str) -> list[str]:
    """The client ids ``whoami`` reported, in order."""
    return re.findall(r"'client_id': '([^']+)'", printed)


def registered_clients(charter: CharterProcess) -> list[str]:
    listed = subprocess.run(
        [*charter.admin_command, "clients", "list", "--json"],
        capture_output=True,
        text=True,
        env=charter.env or charter_env(),
        timeout=120,
        check=True,
    )
    return [client["client_id"] for client in json.loads(listed.stdout)]


async def test_readme_python_sdk_example(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    source = sdk_example()
    assert source.rstrip().endswith("asyncio.run(main())")
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))  # Path.home(): where the example keeps its file
    store = home / STORE_NAME
    port = free_port()
    callback_origin = f"http://127.0.0.1:{port}"
    with run_charter(tmp_path / "data") as charter:
        password = charter.admin_password
        assert password is not None
        opened: list[str] = []
        favicons: list[int] = []
        errors: list[BaseException] = []

        def no_browser(url: str) -> bool:
            """No browser opens; the person copies the printed URL into one: it logs in,
            approves, asks the callback listener for its favicon first, then follows the
            redirect home."""
            opened.append(url)

            async def flow() -> None:
                # Whatever fails, the listener gets a redirect: the example never hangs.
                target = f"{callback_origin}/callback?error=the_test_browser_failed"
                user = HeadlessUser("admin", password)
                try:
                    target = str(await user.authorize(url))
                finally:
                    await user.aclose()
                    async with httpx.AsyncClient(timeout=30) as http:
                        favicon = await http.get(callback_origin + "/favicon.ico")
                        favicons.append(favicon.status_code)
                        await http.get(target)

            def run() -> None:
                try:
                    asyncio.run(flow())
                except BaseException as exc:  # reported by the assertion below
                    errors.append(exc)

            threading.Thread(target=run, daemon=True).start()
            return False

        monkeypatch.setattr(webbrowser, "open", no_browser)

        # First run: registers, signs in through the printed URL, calls whoami.
        await run_example(source, charter, port)
        assert errors == []
        first = capsys.readouterr().out
        assert len(opened) == 1
        assert favicons == [404]  # answered, and the listener went on waiting for the redirect
        assert f"Open this URL in your browser to sign in:\n  {opened[0]}\n" in first
        [client_id] = client_ids(first)
        assert client_id.startswith("dcr_")
        assert "'scopes': ['mcp']" in first
        assert stat.S_IMODE(store.stat().st_mode) == 0o600
        kept = json.loads(store.read_text())
        assert kept["client"]["client_id"] == client_id
        assert kept["tokens"]["access_token"]

        # Second run: the registration and tokens from the file; no new client, no sign-in.
        await run_example(source, charter, port)
        second = capsys.readouterr().out
        assert client_ids(second) == [client_id]
        assert len(opened) == 1

        # Without tokens it signs in again, still as the same registered client.
        store.write_text(json.dumps({"client": kept["client"]}))
        await run_example(source, charter, port)
        assert errors == []
        third = capsys.readouterr().out
        assert len(opened) == 2
        assert favicons == [404, 404]
        assert client_ids(third) == [client_id]
        assert registered_clients(charter) == [client_id]
        assert stat.S_IMODE(store.stat().st_mode) == 0o600
