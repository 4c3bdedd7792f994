"""S69: the ``requestState`` of an ``InputRequiredResult`` is refused when tampered,
truncated, expired, replayed into another tool or other arguments, or presented by another
principal (subject or client) or sealed by another deployment; it reveals nothing of the
tool's state (encrypted, not only signed). Any worker with the deployment's key continues it.
(MCP 2026-07-28 "Multi Round-Trip Requests" §Server Requirements.)"""

from __future__ import annotations

import base64
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from resourceserver.mcp import Context, Registry
from resourceserver.mcp.request_state import Binding, RequestStateError, RequestStateSealer
from resourceserver.principal import Principal
from tests.support.mcp_harness import database
from tests.support.modern_mcp import ModernApp, ModernHttp, modern_app
from tests.support.resource_auth import FakeClock

SECRET_ANSWER = "the-users-secret-answer-0451"
NAME = {"type": "object", "properties": {"name": {"type": "string"}}}


def tools() -> Registry:
    registry = Registry()

    @registry.tool()
    async def two_rounds(ctx: Context, topic: str) -> str:
        """Asks twice."""
        first = await ctx.elicit(f"First, about {topic}?", NAME, key="first")
        second = await ctx.elicit("Second?", NAME, key="second")
        return f"{(first.content or {}).get('name')} then {(second.content or {}).get('name')}"

    @registry.tool()
    async def other_tool(ctx: Context, topic: str) -> str:
        """Asks the same first question."""
        first = await ctx.elicit(f"First, about {topic}?", NAME, key="first")
        return f"other: {(first.content or {}).get('name')}"

    return registry


KEYS = [secrets.token_bytes(32)]


@pytest.fixture
def server(tmp_path: Path) -> ModernApp:
    return modern_app(tools(), database(tmp_path / "rs.db"), keys=KEYS)


@pytest.fixture
async def mcp(server: ModernApp) -> AsyncIterator[ModernHttp]:
    async with server.client() as client:
        yield ModernHttp(client, server.token())


def answer(name: str) -> dict[str, Any]:
    return {"action": "accept", "content": {"name": name}}


async def first_round(mcp: ModernHttp, topic: str = "cats") -> dict[str, Any]:
    """Round 1 asked ``first``; round 2 answered it and asked ``second``: its state."""
    r1 = await mcp.result("tools/call", {"name": "two_rounds", "arguments": {"topic": topic}})
    assert r1["resultType"] == "input_required" and set(r1["inputRequests"]) == {"first"}
    r2 = await mcp.result(
        "tools/call",
        {
            "name": "two_rounds",
            "arguments": {"topic": topic},
            "inputResponses": {"first": answer(SECRET_ANSWER)},
            "requestState": r1["requestState"],
        },
    )
    assert set(r2["inputRequests"]) == {"second"}
    assert r2["requestState"] != r1["requestState"]
    return dict(r2)


async def retry(
    mcp: ModernHttp, state: Any, *, name: str = "two_rounds", topic: str = "cats"
) -> Any:
    params = {
        "name": name,
        "arguments": {"topic": topic},
        "inputResponses": {"second": answer("Bo"), "first": answer("Eve")},
        "requestState": state,
    }
    return await mcp.post("tools/call", params)


def refused(response: Any, reason: str) -> None:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == -32602
    assert error["message"].startswith("Invalid params: requestState")
    assert error["data"] == {"reason": reason}


async def test_s69_the_state_carries_earlier_answers_which_the_retry_cannot_change(
    mcp: ModernHttp,
) -> None:
    state = (await first_round(mcp))["requestState"]
    done = await retry(mcp, state)
    assert done.status_code == 200
    result = done.json()["result"]
    assert result["resultType"] == "complete"
    # The sealed answer to "first" wins over the "first" the retry sent again.
    assert result["content"][0]["text"] == f"{SECRET_ANSWER} then Bo"


async def test_s69_tampered_or_truncated_state_is_refused(mcp: ModernHttp) -> None:
    state = (await first_round(mcp))["requestState"]
    prefix, body = state.rsplit(".", 1)
    flipped = body[:10] + ("A" if body[10] != "A" else "B") + body[11:]
    for bad in (state + "-TAMPERED", f"{prefix}.{flipped}", state[: len(state) // 2], state[:-1]):
        refused(await retry(mcp, bad), "invalid")
    for garbage in ("", "v1", "v2.abc.def", 42, None, ["x"]):
        refused(await retry(mcp, garbage), "invalid")


async def test_s69_state_for_another_tool_or_other_arguments_is_refused(mcp: ModernHttp) -> None:
    state = (await first_round(mcp))["requestState"]
    refused(await retry(mcp, state, name="other_tool"), "mismatch")
    refused(await retry(mcp, state, topic="dogs"), "mismatch")


async def test_s69_state_of_another_subject_or_client_is_refused(
    mcp: ModernHttp, server: ModernApp
) -> None:
    state = (await first_round(mcp))["requestState"]
    for subject, client_id in (("bob", "c1"), ("alice", "other-client")):
        intruder = ModernHttp(mcp.client, server.token(subject=subject, client_id=client_id))
        refused(await retry(intruder, state), "foreign")


async def test_s69_state_sealed_by_another_deployment_is_refused(
    mcp: ModernHttp, tmp_path: Path
) -> None:
    other = modern_app(tools(), database(tmp_path / "other.db"))  # another random key
    async with other.client() as client:
        state = (await first_round(ModernHttp(client, other.token())))["requestState"]
    refused(await retry(mcp, state), "invalid")


async def test_s69_any_worker_with_the_deployment_key_continues_the_call(
    mcp: ModernHttp, server: ModernApp, tmp_path: Path
) -> None:
    state = (await first_round(mcp))["requestState"]
    worker = modern_app(tools(), database(tmp_path / "w2.db"), keys=KEYS, signing_key=server.key)
    async with worker.client() as client:
        done = await retry(ModernHttp(client, worker.token()), state)
    assert done.status_code == 200
    assert done.json()["result"]["content"][0]["text"] == f"{SECRET_ANSWER} then Bo"


async def test_s69_the_state_reveals_nothing(mcp: ModernHttp) -> None:
    state = (await first_round(mcp))["requestState"]
    version, kid, body = state.split(".")
    assert version == "v1" and len(kid) == 8
    raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    for secret in (SECRET_ANSWER, "two_rounds", "alice", "cats", "first"):
        assert secret.encode() not in raw
        assert secret not in state


def test_s69_an_expired_state_is_refused() -> None:
    clock = FakeClock()
    sealer = RequestStateSealer([secrets.token_bytes(32)], ttl_seconds=60, clock=clock)
    principal = Principal("alice", "c1", frozenset(), "j", 0)
    binding = Binding.of(principal, "tools/call", "two_rounds", {"topic": "cats"})
    state = sealer.seal(binding, {"answers": {}})
    clock.advance(59)
    assert sealer.open(state, binding) == {"answers": {}}
    clock.advance(2)
    with pytest.raises(RequestStateError) as expired:
        sealer.open(state, binding)
    assert expired.value.data == {"reason": "expired"}


def test_s69_keys_rotate_new_seals_old_still_opens() -> None:
    old, new = secrets.token_bytes(32), secrets.token_bytes(32)
    principal = Principal("alice", "c1", frozenset(), "j", 0)
    binding = Binding.of(principal, "tools/call", "t", {})
    before = RequestStateSealer([old]).seal(binding, {"answers": {"a": 1}})
    rotated = RequestStateSealer([new, old])
    assert rotated.open(before, binding) == {"answers": {"a": 1}}
    after = rotated.seal(binding, {})
    with pytest.raises(RequestStateError):
        RequestStateSealer([old]).open(after, binding)
