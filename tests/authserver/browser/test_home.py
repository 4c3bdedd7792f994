"""The home page at ``/`` and the page a browser gets for ``GET /mcp``; MCP clients' requests
to ``/mcp`` are untouched."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from authserver.context import AuthServer
from authserver.deployment import build_deployment
from authserver.ops.metrics import RouteLabels
from tests.support.pages import assert_page_headers

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def client(server: AuthServer) -> httpx.AsyncClient:
    app = build_deployment(server.settings, server=server).app
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000")


async def test_home_page_names_the_mcp_url(make_server: Callable[..., AuthServer]) -> None:
    server = make_server()
    async with client(server) as http:
        page = await http.get("/", headers={"Accept": BROWSER_ACCEPT})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert_page_headers(page)
    assert "http://127.0.0.1:8000/mcp" in page.text
    assert 'href="/logout"' in page.text


async def test_browser_get_of_mcp_gets_a_page_and_clients_get_json(
    make_server: Callable[..., AuthServer],
) -> None:
    server = make_server()
    async with client(server) as http:
        page = await http.get("/mcp", headers={"Accept": BROWSER_ACCEPT})
        assert page.status_code == 200
        assert "This is an MCP endpoint" in page.text
        assert_page_headers(page)
        mcp = await http.get("/mcp", headers={"Accept": "text/event-stream"})
        assert mcp.status_code == 401
        assert "www-authenticate" in mcp.headers
        posted = await http.post("/mcp", json={}, headers={"Accept": BROWSER_ACCEPT})
        assert posted.status_code == 401


def test_mcp_routes_keep_their_metric_labels(make_server: Callable[..., AuthServer]) -> None:
    server = make_server()
    labels = RouteLabels(build_deployment(server.settings, server=server).app.routes)
    assert labels.label("/mcp") == "/mcp"
    assert labels.label("/") == "/"
    assert labels.label("/nothing/here") == "other"
