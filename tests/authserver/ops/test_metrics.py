"""``/metrics``: Prometheus text, not public (loopback peers, or the metrics token), labels
bounded to route templates and fixed names (S91)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from authserver.context import AuthServer
from authserver.deployment import build_deployment


def client_for(server: AuthServer, peer: str) -> httpx.AsyncClient:
    app = build_deployment(server.settings, server=server).app
    transport = httpx.ASGITransport(app=app, client=(peer, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000")


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(text: str, name: str, **labels: Any) -> float:
    return samples(text).get((name, tuple(sorted(labels.items()))), 0.0)


async def test_s91_metrics_are_not_public_by_default(
    make_server: Callable[..., AuthServer],
) -> None:
    server = make_server()
    async with client_for(server, "203.0.113.9") as remote:
        refused = await remote.get("/metrics")
        assert refused.status_code == 403
        assert "charter_" not in refused.text
    async with client_for(server, "127.0.0.1") as local:
        answered = await local.get("/metrics")
        assert answered.status_code == 200
        assert answered.headers["content-type"].startswith("text/plain")
        assert "charter_http_requests_total" in answered.text


async def test_s91_metrics_token_lets_remote_scrapers_in(
    make_server: Callable[..., AuthServer],
) -> None:
    server = make_server(metrics_token="a-long-metrics-token-for-tests")
    async with client_for(server, "203.0.113.9") as remote:
        assert (await remote.get("/metrics")).status_code == 403
        wrong = {"Authorization": "Bearer not-the-token"}
        assert (await remote.get("/metrics", headers=wrong)).status_code == 403
        right = {"Authorization": "Bearer a-long-metrics-token-for-tests"}
        assert (await remote.get("/metrics", headers=right)).status_code == 200
    async with client_for(server, "127.0.0.1") as local:  # the token is then needed everywhere
        assert (await local.get("/metrics")).status_code == 403


async def test_metrics_off_means_no_endpoint(make_server: Callable[..., AuthServer]) -> None:
    server = make_server(metrics_enabled=False)
    async with client_for(server, "127.0.0.1") as local:
        assert (await local.get("/metrics")).status_code in (401, 404, 405)


async def test_s91_labels_hold_route_templates_and_no_client_ids(
    make_server: Callable[..., AuthServer],
) -> None:
    server = make_server(registration_rate_per_minute=1000)
    async with client_for(server, "127.0.0.1") as local:
        before = (await local.get("/metrics")).text
        client_ids = []
        for index in range(20):
            registered = await local.post(
                "/register",
                json={
                    "redirect_uris": ["http://127.0.0.1/cb"],
                    "token_endpoint_auth_method": "none",
                    "client_name": f"client {index}",
                },
            )
            assert registered.status_code == 201, registered.text
            client_ids.append(registered.json()["client_id"])
        for client_id in client_ids[:3]:
            await local.get(f"/no-such-page/{client_id}")
        bad = await local.post("/token", data={"grant_type": "password", "username": "x"})
        assert bad.status_code == 401
        after = (await local.get("/metrics")).text
    assert not any(client_id in after for client_id in client_ids)
    assert "client 1" not in after
    registered_delta = value(after, "charter_registrations_total") - value(
        before, "charter_registrations_total"
    )
    assert registered_delta == 20
    posts = ("charter_http_requests_total", {"route": "/register", "method": "POST"})
    assert (
        value(after, posts[0], status="201", **posts[1])
        - value(before, posts[0], status="201", **posts[1])
        == 20
    )
    assert value(after, "charter_http_requests_total", route="other", method="GET", status="404")
    assert value(after, "charter_token_grants_total", grant_type="other", outcome="invalid_client")
    routes = {
        dict(labels).get("route")
        for name, labels in samples(after)
        if name == "charter_http_requests_total"
    }
    assert {"/register", "/metrics", "/token", "other"} <= routes
    assert not any(route and ("dcr_" in route or "no-such-page" in route) for route in routes)
