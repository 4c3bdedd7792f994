"""S74: a 2026-07-28 request is authenticated like every other. ``server/discover`` without a
token is a 401 with the RFC 9728 challenge (Charter has no public tools, so nothing is shown
anonymously); a bad token is a 401; a token without the base scope is a 403; and nothing about
the protocol (versions, ``-32602``/``-32022`` details) is answered before authentication."""

from __future__ import annotations

from pathlib import Path

import pytest

from resourceserver.mcp import load_tool_modules
from resourceserver.tools import builtin_registry
from tests.support.mcp_harness import database
from tests.support.modern_mcp import ModernApp, ModernHttp, envelope, modern_app


@pytest.fixture
def server(tmp_path: Path) -> ModernApp:
    engine = database(tmp_path / "rs.db")
    registry = load_tool_modules(["tests.conformance.tools"], into=builtin_registry(engine))
    return modern_app(registry, engine)


@pytest.mark.parametrize(
    "meta",
    [envelope(), {}, {**envelope(), "io.modelcontextprotocol/protocolVersion": "v999"}],
    ids=["valid", "malformed", "unsupported"],
)
async def test_s74_discover_without_a_token_is_401_with_the_challenge(
    server: ModernApp, meta: dict[str, object]
) -> None:
    async with server.client() as client:
        anonymous = ModernHttp(client, "unused")
        headers = {"Authorization": None}
        response = await anonymous.post("server/discover", meta=meta, headers=headers)
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer ")
    assert (
        'resource_metadata="http://127.0.0.1:8000/.well-known/oauth-protected-resource/mcp"'
        in challenge
    )
    assert "supportedVersions" not in response.text and "-3202" not in response.text


async def test_s74_a_bad_token_is_401_and_a_weak_one_403(server: ModernApp) -> None:
    async with server.client() as client:
        forged = ModernHttp(client, server.token()[:-4] + "AAAA")
        rejected = await forged.post("server/discover")
        assert rejected.status_code == 401
        assert 'error="invalid_token"' in rejected.headers["www-authenticate"]
        weak = ModernHttp(client, server.token(scope="notes:read"))
        refused = await weak.post("server/discover")
        assert refused.status_code == 403
        assert 'error="insufficient_scope"' in refused.headers["www-authenticate"]
        # A tool needing a scope the token lacks: the step-up challenge, before it runs.
        scoped = ModernHttp(client, server.token(scope="mcp"))
        step_up = await scoped.post(
            "tools/call", {"name": "notes_add", "arguments": {"title": "t"}}
        )
        assert step_up.status_code == 403
        assert 'scope="mcp notes:write"' in step_up.headers["www-authenticate"]
        ok = await ModernHttp(client, server.token()).post("server/discover")
        assert ok.status_code == 200
