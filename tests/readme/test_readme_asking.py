"""The README's "What changes for a tool that elicits or samples" example behaves as told: in
2026-07-28 the call ends with the question and the retry with the answer finishes it; in a
handshake-era session the same code waits for the answer."""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any

from resourceserver.mcp import Context, Registry
from resourceserver.principal import Principal
from tests.support.mcp_harness import database
from tests.support.modern_mcp import ModernHttp, modern_app

README = Path(__file__).resolve().parents[2] / "README.md"


def example() -> Registry:
    source = README.read_text(encoding="utf-8").split("# asking.py\n", 1)[1].split("```", 1)[0]
    module = types.ModuleType("readme_asking")
    exec(compile(source, "README.md", "exec"), module.__dict__)  # noqa: S102 - our own README
    registry: Registry = module.registry
    return registry


async def test_the_asking_example_in_the_stateless_era(tmp_path: Path) -> None:
    app = modern_app(example(), database(tmp_path / "rs.db"))
    async with app.client() as client:
        mcp = ModernHttp(client, app.token(), {"elicitation": {}})
        call = {"name": "greet_user", "arguments": {}}
        first = await mcp.result("tools/call", call)
        assert first["resultType"] == "input_required"
        assert first["inputRequests"]["name"]["params"]["message"] == "What is your name?"
        answer = {"action": "accept", "content": {"name": "Ada"}}
        done = await mcp.result(
            "tools/call",
            {**call, "inputResponses": {"name": answer}, "requestState": first["requestState"]},
        )
        assert done["content"][0]["text"] == "Hello, Ada!"
        declined = await mcp.result(
            "tools/call",
            {
                **call,
                "inputResponses": {"name": {"action": "decline"}},
                "requestState": first["requestState"],
            },
        )
        assert declined["content"][0]["text"] == "Hello, stranger!"


async def test_the_asking_example_in_a_handshake_session() -> None:
    asked: list[tuple[str, dict[str, Any]]] = []

    class Session:
        async def notify(self, method: str, params: dict[str, Any]) -> None:
            return None

        async def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
            asked.append((method, params))
            return {"action": "accept", "content": {"name": "Grace"}}

        async def close_stream(self) -> None:
            return None

    principal = Principal("alice", "c1", frozenset({"mcp"}), "jti", 2_000_000_000)
    ctx = Context(
        principal=principal,
        session_id="s",
        channel=Session(),
        client_capabilities={"elicitation": {}},
    )
    result = await example().tools["greet_user"].call({}, ctx)
    assert result["content"][0]["text"] == "Hello, Grace!"
    assert [method for method, _ in asked] == ["elicitation/create"]
