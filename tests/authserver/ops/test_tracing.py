"""OpenTelemetry spans of a whole deployment on a real socket, exported to the SDK's
``InMemorySpanExporter``: the HTTP server span, ``mcp <method>``, ``tools/call <tool>`` parented
by the client's trace context (``params._meta`` first, else the ``traceparent`` header), the
token endpoint's span; and nothing held that is secret or an argument value (S92)."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, StatusCode, TraceFlags

from authserver.config.settings import CharterSettings
from authserver.context import AuthServer
from authserver.deployment import build_deployment, build_resource_only, prepare_resource_database
from authserver.ops.logging_setup import RequestIdMiddleware
from authserver.ops.tracing import TracingMiddleware, wanted_exporters
from authserver.storage.db import make_engine
from resourceserver import tracing
from tests.support.browser_flow import pkce_pair
from tests.support.factories import create_client, create_user
from tests.support.headless import HeadlessUser
from tests.support.live import free_port, serve_app
from tests.support.oauth_flow import REDIRECT_URI, register_public_client
from tests.support.reliability import open_mcp_session

SCOPES = "mcp notes:read notes:write"


@dataclass
class Traced:
    """A deployment on a socket whose spans land in ``exporter``."""

    server: AuthServer
    base_url: str
    exporter: InMemorySpanExporter

    @property
    def mcp_url(self) -> str:
        return self.base_url + "/mcp"

    def spans(self) -> tuple[ReadableSpan, ...]:
        return tuple(self.exporter.get_finished_spans())

    def named(self, name: str) -> list[ReadableSpan]:
        return [span for span in self.spans() if span.name == name]

    def wait(self, wanted: Callable[[ReadableSpan], bool]) -> ReadableSpan:
        """The one span ``wanted`` picks, once it has ended (an HTTP request's span ends just
        after its response has gone out)."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            found = [span for span in self.spans() if wanted(span)]
            if found:
                return only(found)
            time.sleep(0.01)
        raise AssertionError(f"no such span among {[s.name for s in self.spans()]}")

    def by_id(self, span_id: int) -> ReadableSpan:
        return self.wait(lambda s: s.context is not None and s.context.span_id == span_id)

    def settle(self) -> tuple[ReadableSpan, ...]:
        """Every span, once no more have ended for a moment."""
        count = -1
        while count != len(self.spans()):
            count = len(self.spans())
            time.sleep(0.3)
        return self.spans()

    def client_credentials(self) -> tuple[str, str]:
        """A confidential client_credentials client; its id and secret."""
        client, secret = create_client(
            self.server,
            confidential=True,
            auth_method="client_secret_post",
            grant_types=["client_credentials"],
            scope=SCOPES,
        )
        assert secret is not None
        return client.client_id, secret

    def token(self, client_id: str, secret: str) -> str:
        response = httpx.post(
            self.base_url + "/token",
            data={
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": secret,
                "resource": self.mcp_url,
                "scope": SCOPES,
            },
        )
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token

    def session(self) -> dict[str, str]:
        """A handshake-era MCP session's headers (a fresh token)."""
        return open_mcp_session(self.mcp_url, self.token(*self.client_credentials()), "tracing")


@pytest.fixture
def in_memory() -> Iterator[InMemorySpanExporter]:
    """Spans of this test only (the tracer provider is not made global)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    try:
        yield exporter
    finally:
        tracing.uninstall()
        provider.shutdown()


@pytest.fixture
def traced(
    make_server: Callable[..., AuthServer], in_memory: InMemorySpanExporter
) -> Iterator[Traced]:
    port = free_port()
    server = make_server(issuer=f"http://127.0.0.1:{port}")
    app = build_deployment(server.settings, server=server).app
    with serve_app(app, port=port) as base_url:
        yield Traced(server, base_url, in_memory)


def traceparent() -> tuple[str, int, int]:
    """A client's W3C ``traceparent`` (sampled) and its trace and span ids."""
    trace_id, span_id = secrets.randbits(128) | 1, secrets.randbits(64) | 1
    return f"00-{trace_id:032x}-{span_id:016x}-01", trace_id, span_id


def tool_call(
    traced: Traced,
    headers: dict[str, str],
    name: str,
    arguments: dict[str, Any],
    *,
    meta: dict[str, Any] | None = None,
    request_id: int | str = 7,
) -> dict[str, Any]:
    params: dict[str, Any] = {"name": name, "arguments": arguments}
    if meta is not None:
        params["_meta"] = meta
    response = httpx.post(
        traced.mcp_url,
        headers=headers,
        json={"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def trace_of(span: ReadableSpan) -> int:
    assert span.context is not None
    return int(span.context.trace_id)


def only(spans: Sequence[ReadableSpan]) -> ReadableSpan:
    assert len(spans) == 1, [span.name for span in spans]
    return spans[0]


def test_tracing_meta_traceparent_is_the_parent_of_the_tool_span(traced: Traced) -> None:
    headers = traced.session()
    parent, trace_id, span_id = traceparent()
    body = tool_call(traced, headers, "whoami", {}, meta={"traceparent": parent})
    assert body["result"]["isError"] is False

    tool = only(traced.named("tools/call whoami"))
    assert tool.context is not None and tool.parent is not None
    assert tool.context.trace_id == trace_id
    assert tool.parent.span_id == span_id
    assert tool.parent.is_remote
    assert tool.kind is SpanKind.SERVER
    assert tool.attributes is not None
    assert tool.attributes["gen_ai.tool.name"] == "whoami"
    assert tool.attributes["charter.tool.outcome"] == "ok"
    # The in-process MCP span it ran under is linked (its own trace: no header was sent).
    method = traced.named("mcp tools/call")[-1]
    assert method.context is not None
    assert [link.context.span_id for link in tool.links] == [method.context.span_id]
    assert method.context.trace_id != trace_id


def test_tracing_http_traceparent_is_the_parent_of_the_tool_span(traced: Traced) -> None:
    headers = traced.session()
    parent, trace_id, span_id = traceparent()
    body = tool_call(traced, {**headers, "traceparent": parent}, "whoami", {})
    assert body["result"]["isError"] is False

    tool = only(traced.named("tools/call whoami"))
    assert tool.context is not None and tool.parent is not None
    assert tool.context.trace_id == trace_id
    assert tool.parent.span_id == span_id
    # The HTTP server span is the header's child too, and the MCP span the HTTP span's.
    http = traced.wait(lambda s: s.name == "POST /mcp" and trace_of(s) == trace_id)
    method = only([s for s in traced.named("mcp tools/call") if trace_of(s) == trace_id])
    assert http.parent is not None and http.parent.span_id == span_id
    assert http.context is not None and method.parent is not None
    assert method.parent.span_id == http.context.span_id


def test_tracing_meta_wins_over_the_http_header_for_the_tool_span(traced: Traced) -> None:
    headers = traced.session()
    in_header, header_trace, _ = traceparent()
    in_meta, meta_trace, meta_span = traceparent()
    tool_call(
        traced, {**headers, "traceparent": in_header}, "whoami", {}, meta={"traceparent": in_meta}
    )
    tool = only(traced.named("tools/call whoami"))
    assert tool.context is not None and tool.parent is not None
    assert (tool.context.trace_id, tool.parent.span_id) == (meta_trace, meta_span)
    traced.wait(lambda s: s.name == "POST /mcp" and trace_of(s) == header_trace)


def test_tracing_without_client_context_the_tool_span_nests_in_the_request(
    traced: Traced,
) -> None:
    headers = traced.session()
    tool_call(traced, headers, "whoami", {}, meta={"traceparent": "not a traceparent"})
    tool = only(traced.named("tools/call whoami"))
    method = traced.named("mcp tools/call")[-1]
    assert tool.parent is not None and method.context is not None and method.parent is not None
    assert tool.parent.span_id == method.context.span_id
    http = traced.by_id(method.parent.span_id)
    assert http.name == "POST /mcp"
    assert tool.kind is SpanKind.INTERNAL and not tool.links


def test_tracing_spans_say_route_method_status_era_and_outcome(traced: Traced) -> None:
    headers = traced.session()
    tool_call(traced, headers, "notes_add", {"title": "a title"}, request_id="req-1")
    tool_call(traced, headers, "notes_add", {"title": ""})  # invalid: too short
    tool_call(traced, headers, "notes_read", {"note_id": 999999})  # not found: a tool error
    httpx.get(traced.base_url + "/.well-known/oauth-protected-resource/mcp?x=1")

    outcomes = [
        dict(s.attributes or {})["charter.tool.outcome"]
        for s in traced.spans()
        if s.name.startswith("tools/call ")
    ]
    assert outcomes == ["ok", "validation", "error"]

    last = traced.named("mcp tools/call")[-1]
    assert last.parent is not None
    http = traced.by_id(last.parent.span_id)
    assert http.name == "POST /mcp" and http.kind is SpanKind.SERVER
    assert http.attributes == {
        "http.request.method": "POST",
        "http.route": "/mcp",
        "url.scheme": "http",
        "http.response.status_code": 200,
    }
    httpx.get(traced.base_url + "/no-such-page/123")
    unmatched = traced.wait(lambda s: s.name == "GET")
    assert unmatched.attributes == {
        "http.request.method": "GET",
        "url.scheme": "http",
        "http.response.status_code": 404,
    }
    metadata = traced.wait(lambda s: s.name == "GET /.well-known/oauth-protected-resource/mcp")
    assert metadata.attributes is not None
    assert metadata.attributes["http.route"] == "/.well-known/oauth-protected-resource/mcp"

    method = traced.named("mcp tools/call")[0]
    assert method.attributes == {
        "mcp.method.name": "tools/call",
        "charter.mcp.era": "handshake",
        "charter.jsonrpc.request_id_kind": "string",
        "mcp.protocol.version": "2025-11-25",
    }
    initialize = only(traced.named("mcp initialize"))
    assert initialize.attributes is not None
    assert initialize.attributes["mcp.protocol.version"] == "2025-11-25"

    token = only(traced.named("oauth token"))
    assert token.attributes == {
        "oauth.grant_type": "client_credentials",
        "charter.oauth.outcome": "issued",
    }
    assert token.parent is not None  # inside the HTTP span of POST /token
    token_http = traced.wait(lambda s: s.name == "POST /token")
    assert token_http.context is not None and token.parent.span_id == token_http.context.span_id


def test_tracing_failed_token_request_and_unknown_method_are_errors(traced: Traced) -> None:
    refused = httpx.post(
        traced.base_url + "/token",
        data={"grant_type": "client_credentials", "client_id": "nobody", "client_secret": "x"},
    )
    assert refused.status_code == 401
    token = only(traced.named("oauth token"))
    assert token.attributes is not None
    assert token.attributes["charter.oauth.outcome"] == "invalid_client"
    assert token.status.status_code is StatusCode.ERROR

    headers = traced.session()
    answer = httpx.post(
        traced.mcp_url, headers=headers, json={"jsonrpc": "2.0", "id": 3, "method": "no/such"}
    )
    assert answer.json()["error"]["code"] == -32601
    other = only(traced.named("mcp other"))
    assert other.attributes is not None
    assert other.attributes["mcp.method.name"] == "other"
    assert other.status.status_code is StatusCode.ERROR
    assert other.status.description is None


def test_tracing_off_spans_are_the_shared_no_op() -> None:
    tracing.uninstall()
    assert not tracing.enabled()
    assert tracing.span("anything") is tracing.NO_SPAN
    assert tracing.tool_span("whoami", {"traceparent": traceparent()[0]}) is tracing.NO_SPAN
    assert tracing.tool_parent({"traceparent": traceparent()[0]}) is None
    with tracing.span("anything") as span:
        span.set("key", "value")


def test_tracing_off_adds_no_layer_to_the_request_path(
    make_server: Callable[..., AuthServer],
) -> None:
    tracing.uninstall()
    server = make_server()
    app = build_deployment(server.settings, server=server).app
    assert TracingMiddleware not in {entry.cls for entry in app.user_middleware}
    assert isinstance(app.direct["/mcp"], RequestIdMiddleware)


def test_tracing_on_wraps_the_app_and_the_mcp_path(
    make_server: Callable[..., AuthServer], in_memory: InMemorySpanExporter
) -> None:
    server = make_server()
    app = build_deployment(server.settings, server=server).app
    assert app.user_middleware[0].cls is TracingMiddleware
    assert isinstance(app.direct["/mcp"], TracingMiddleware)


@pytest.mark.parametrize(
    ("environ", "wanted"),
    [
        ({}, []),
        ({"OTEL_TRACES_EXPORTER": "none"}, []),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, ["otlp"]),
        ({"OTEL_TRACES_EXPORTER": "console, otlp, console"}, ["console", "otlp"]),
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, []),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, ["otlp"]),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, ["otlp"]),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}, []),
    ],
)
def test_tracing_exporters_from_the_otel_variables(
    environ: dict[str, str], wanted: list[str]
) -> None:
    assert wanted_exporters(environ) == wanted


def span_text(spans: Sequence[ReadableSpan]) -> str:
    """Everything a span exporter would send of ``spans``, as one string."""
    parts: list[str] = []
    for span in spans:
        parts.append(span.name)
        parts.append(json.dumps(dict(span.attributes or {})))
        parts.append(str(span.status.description))
        for event in span.events:
            parts.append(event.name)
            parts.append(json.dumps(dict(event.attributes or {})))
        for link in span.links:
            parts.append(json.dumps(dict(link.attributes or {})))
        parts.append(json.dumps(dict(span.resource.attributes)))
    return "\n".join(parts)


async def test_s92_spans_hold_no_secret_or_argument_value(traced: Traced) -> None:
    password = "pw-" + secrets.token_urlsafe(12)
    create_user(traced.server, "tracer", password)
    state = "state-" + secrets.token_urlsafe(12)
    user = HeadlessUser("tracer", password)
    async with httpx.AsyncClient(base_url=traced.base_url, timeout=30) as http:
        public_id = await register_public_client(http)
        verifier, challenge = pkce_pair()
        url = http.base_url.join("/authorize").copy_merge_params(
            {
                "response_type": "code",
                "client_id": public_id,
                "redirect_uri": REDIRECT_URI,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
                "state": state,
                "scope": SCOPES,
                "resource": traced.mcp_url,
            }
        )
        try:
            redirect = await user.authorize(str(url))
        finally:
            await user.aclose()
        code = redirect.params["code"]
        issued = await http.post(
            "/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": REDIRECT_URI,
                "client_id": public_id,
                "code_verifier": verifier,
                "resource": traced.mcp_url,
            },
        )
        assert issued.status_code == 200, issued.text
        refresh_token = issued.json()["refresh_token"]
        refreshed = await http.post(
            "/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": refresh_token,
                "client_id": public_id,
                "resource": traced.mcp_url,
            },
        )
        assert refreshed.status_code == 200, refreshed.text
        access_token = refreshed.json()["access_token"]
        wrong_secret = "wrong-" + secrets.token_urlsafe(12)
        refused = await http.post(
            "/token",
            data={
                "grant_type": "client_credentials",
                "client_id": public_id,
                "client_secret": wrong_secret,
            },
        )
        assert refused.status_code in (400, 401)
    client_id, client_secret = traced.client_credentials()
    machine_token = traced.token(client_id, client_secret)

    headers = open_mcp_session(traced.mcp_url, access_token, "s92")
    title, body = "title-" + secrets.token_urlsafe(12), "body-" + secrets.token_urlsafe(12)
    request_id = "id-" + secrets.token_urlsafe(12)
    added = tool_call(
        traced, headers, "notes_add", {"title": title, "body": body}, request_id=request_id
    )
    assert added["result"]["isError"] is False
    too_long = "long-" + secrets.token_urlsafe(12) + "x" * 300
    invalid = tool_call(traced, headers, "notes_add", {"title": too_long})
    assert invalid["result"]["isError"] is True
    missing = 900000 + secrets.randbelow(99999)
    tool_call(traced, headers, "notes_read", {"note_id": missing})
    unknown_tool = "tool-" + secrets.token_urlsafe(12)
    tool_call(traced, headers, unknown_tool, {"x": title})
    query = "query-" + secrets.token_urlsafe(12)
    httpx.get(traced.base_url + f"/.well-known/oauth-protected-resource/mcp?q={query}")
    httpx.get(traced.base_url + f"/no-such-path-{query}")
    machine_headers = open_mcp_session(traced.mcp_url, machine_token, "s92 machine")
    tool_call(traced, machine_headers, "whoami", {})
    modern_title = "modern-" + secrets.token_urlsafe(12)
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {access_token}"}) as http2:
        async with Client(streamable_http_client(traced.mcp_url, http_client=http2)) as client:
            assert client.protocol_version == "2026-07-28"
            modern = await client.call_tool("notes_add", {"title": modern_title})
            assert not modern.is_error

    spans = traced.settle()
    names = {span.name for span in spans}
    assert {
        "oauth token",
        "tools/call notes_add",
        "tools/call notes_read",
        "mcp tools/call",
    } <= names
    assert any(name.startswith("GET /authorize") for name in names), names
    text = span_text(spans)
    secrets_and_values = {
        "password": password,
        "state": state,
        "code": code,
        "code_verifier": verifier,
        "code_challenge": challenge,
        "refresh_token": refresh_token,
        "access_token": access_token,
        "machine token": machine_token,
        "client secret": client_secret,
        "wrong secret": wrong_secret,
        "title argument": title,
        "2026-07-28 title argument": modern_title,
        "body argument": body,
        "too long argument": too_long[:20],
        "note id argument": str(missing),
        "JSON-RPC id": request_id,
        "unknown tool name": unknown_tool,
        "query string": query,
        "session id": headers["Mcp-Session-Id"],
        "Authorization header": "Bearer",
    }
    leaked = {what: value for what, value in secrets_and_values.items() if value in text}
    assert not leaked, leaked
    # Tokens' pieces too (a JWT's signature or payload alone would be as bad).
    for token in (access_token, machine_token):
        for piece in token.split("."):
            assert piece not in text


@pytest.mark.parametrize(("mode", "era"), [("legacy", "handshake"), ("auto", "2026-07-28")])
async def test_tracing_official_sdk_client_context_parents_the_tool_span(
    traced: Traced, mode: str, era: str
) -> None:
    """The official MCP SDK client injects the current trace context into ``_meta``
    (SEP-414); in both eras it is the parent of the tool's span."""
    _, trace_id, span_id = traceparent()
    client_span = NonRecordingSpan(
        SpanContext(trace_id, span_id, is_remote=False, trace_flags=TraceFlags(1))
    )
    token = traced.token(*traced.client_credentials())
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http:
        client = Client(streamable_http_client(traced.mcp_url, http_client=http), mode=mode)
        async with client:
            with trace.use_span(client_span):
                added = await client.call_tool("notes_add", {"title": "traced"})
            assert not added.is_error
    tool = only(traced.named("tools/call notes_add"))
    assert tool.context is not None and tool.parent is not None
    assert (tool.context.trace_id, tool.parent.span_id) == (trace_id, span_id)
    method = [
        s
        for s in traced.named("mcp tools/call")
        if s.context and s.context.span_id in {link.context.span_id for link in tool.links}
    ]
    assert only(method).attributes is not None
    assert dict(only(method).attributes or {})["charter.mcp.era"] == era


async def test_tracing_resource_only_deployment_has_http_spans(
    tmp_path: Path, in_memory: InMemorySpanExporter
) -> None:
    settings = CharterSettings(
        issuer="http://127.0.0.1:8000",
        data_dir=tmp_path / "data",
        database_url=f"sqlite:///{tmp_path / 'rs.db'}",
        authorization_server="https://login.example.com/realms/acme",
        external_token_algorithms="ES256",
    )
    engine = make_engine(settings.database_url)
    try:
        prepare_resource_database(engine)
        app = build_resource_only(settings, engine=engine).app
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=settings.issuer) as http:
            assert (await http.get("/.well-known/oauth-protected-resource/mcp")).status_code == 200
            parent, trace_id, span_id = traceparent()
            answer = await http.post("/mcp", json={}, headers={"traceparent": parent})
            assert answer.status_code == 401
    finally:
        engine.dispose()
    names = [span.name for span in in_memory.get_finished_spans()]
    assert names == ["GET /.well-known/oauth-protected-resource/mcp", "POST /mcp"]
    mcp = in_memory.get_finished_spans()[1]
    assert mcp.parent is not None and (trace_of(mcp), mcp.parent.span_id) == (trace_id, span_id)
    assert dict(mcp.attributes or {})["http.response.status_code"] == 401


async def test_tracing_2026_07_28_discover_has_its_mcp_span(traced: Traced) -> None:
    token = traced.token(*traced.client_credentials())
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http:
        async with Client(streamable_http_client(traced.mcp_url, http_client=http)) as client:
            assert client.protocol_version == "2026-07-28"
    discover = only(traced.named("mcp server/discover"))
    assert dict(discover.attributes or {}) == {
        "mcp.method.name": "server/discover",
        "charter.mcp.era": "2026-07-28",
        "charter.jsonrpc.request_id_kind": "number",
        "mcp.protocol.version": "2026-07-28",
    }
