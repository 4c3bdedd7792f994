"""S68: a 2026-07-28 request's ``_meta`` is validated on every request: missing or malformed
→ HTTP 400, ``-32602``, the request's own id; an unsupported version → ``-32022`` with
``data.supported``; a header disagreeing with ``_meta`` → ``-32020``; an unknown or removed
method → HTTP 404, ``-32601``. (MCP 2026-07-28 "Overview" §_meta, "Versioning".)"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from resourceserver.mcp import load_tool_modules
from resourceserver.mcp.versions import ALL_VERSIONS
from tests.support.mcp_harness import database
from tests.support.modern_mcp import ModernApp, ModernHttp, envelope, modern_app

PV = "io.modelcontextprotocol/protocolVersion"
CAPS = "io.modelcontextprotocol/clientCapabilities"
INFO = "io.modelcontextprotocol/clientInfo"


@pytest.fixture
def server(tmp_path: Path) -> ModernApp:
    engine = database(tmp_path / "rs.db")
    return modern_app(load_tool_modules(["tests.conformance.tools"]), engine)


@pytest.fixture
async def mcp(server: ModernApp) -> AsyncIterator[ModernHttp]:
    async with server.client() as client:
        yield ModernHttp(client, server.token())


def without(key: str) -> dict[str, Any]:
    meta = envelope()
    del meta[key]
    return meta


MALFORMED: list[tuple[str, dict[str, Any] | None]] = [
    ("missing _meta", None),
    ("missing protocolVersion", without(PV)),
    ("missing clientCapabilities", without(CAPS)),
    ("capabilities not an object", {**envelope(), CAPS: ["sampling"]}),
    ("protocolVersion not a string", {**envelope(), PV: 20260728}),
    ("clientInfo without version", {**envelope(), INFO: {"name": "x"}}),
    ("unknown log level", {**envelope(), "io.modelcontextprotocol/logLevel": "loud"}),
]


@pytest.mark.parametrize(("case", "meta"), MALFORMED, ids=[case for case, _ in MALFORMED])
async def test_s68_missing_or_malformed_meta_is_400_invalid_params_with_the_request_id(
    mcp: ModernHttp, case: str, meta: dict[str, Any] | None
) -> None:
    for method, request_id in (("server/discover", 41), ("tools/call", "call-7")):
        params: dict[str, Any] = {"name": "greet", "arguments": {"name": "x"}}
        if meta is not None:
            params["_meta"] = meta
        response = await mcp.client.post(
            mcp.url,
            json={"jsonrpc": "2.0", "id": request_id, "method": method, "params": params},
            headers=mcp.headers(method, params),
        )
        assert response.status_code == 400, (case, response.text)
        body = response.json()
        assert body["id"] == request_id
        assert body["error"]["code"] == -32602, body
        assert "Invalid params" in body["error"]["message"]


async def test_s68_client_info_is_optional(mcp: ModernHttp) -> None:
    result = await mcp.result("server/discover", meta=without(INFO))
    assert result["resultType"] == "complete"


async def test_s68_unsupported_version_is_32022_with_the_supported_versions(
    mcp: ModernHttp,
) -> None:
    for requested in ("1999-01-01", "2025-11-25", "v999.0.0"):
        response = await mcp.post(
            "tools/list",
            meta={**envelope(), PV: requested},
            headers={"MCP-Protocol-Version": requested},
            request_id=9,
        )
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert response.json()["id"] == 9
        assert error["code"] == -32022
        assert error["data"] == {"supported": list(ALL_VERSIONS), "requested": requested}


async def test_s68_version_header_must_match_meta(mcp: ModernHttp) -> None:
    mismatch = await mcp.post("tools/list", meta={**envelope(), PV: "v999"}, request_id=3)
    assert mismatch.status_code == 400
    assert mismatch.json()["error"]["code"] == -32020
    assert mismatch.json()["id"] == 3
    # Without the header the _meta version alone does not do: -32020 as well.
    missing = await mcp.post("tools/list", headers={"MCP-Protocol-Version": None})
    assert missing.status_code == 400
    assert missing.json()["error"]["code"] == -32020


async def test_s68_a_long_requested_version_is_bounded(mcp: ModernHttp) -> None:
    long = "x" * 5000
    response = await mcp.post(
        "tools/list", meta={**envelope(), PV: long}, headers={"MCP-Protocol-Version": long}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == -32602
    assert long not in response.text


@pytest.mark.parametrize(
    "method",
    [
        "initialize",
        "ping",
        "logging/setLevel",
        "resources/subscribe",
        "resources/unsubscribe",
        "tasks/result",
        "tasks/list",
        "no/such/method",
    ],
)
async def test_s68_removed_and_unknown_methods_are_404_method_not_found(
    mcp: ModernHttp, method: str
) -> None:
    response = await mcp.post(method, {"uri": "test://static-text"}, request_id="m1")
    assert response.status_code == 404, response.text
    assert response.json() == {
        "jsonrpc": "2.0",
        "id": "m1",
        "error": {"code": -32601, "message": f"Method not found: {method}"},
    }


async def test_s68_missing_capability_is_32021_naming_it(mcp: ModernHttp) -> None:
    bare = ModernHttp(mcp.client, mcp.token, capabilities={})
    response = await bare.post("tools/call", {"name": "test_missing_capability", "arguments": {}})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == -32021
    assert error["data"] == {"requiredCapabilities": {"sampling": {}}}


async def test_s68_a_modern_request_gets_no_session_and_a_legacy_client_still_does(
    mcp: ModernHttp, server: ModernApp
) -> None:
    response = await mcp.post("tools/list")
    assert response.status_code == 200
    assert "mcp-session-id" not in response.headers
    initialize = await mcp.client.post(
        mcp.url,
        json={
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {}},
        },
        headers={"Authorization": f"Bearer {server.token()}", "Accept": "application/json"},
    )
    assert initialize.status_code == 200
    assert initialize.headers["mcp-session-id"]
    assert initialize.json()["result"]["protocolVersion"] == "2025-11-25"
