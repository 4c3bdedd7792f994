"""Spans of the deployment (OpenTelemetry tracing API), and nothing at all when tracing is off.

OpenTelemetry is optional (``pip install 'charter-mcp[otel]'``): this module imports nothing
of it until :func:`install` is given a tracer provider (``charter serve`` does it when the
``OTEL_*`` variables ask for traces, :mod:`authserver.ops.tracing`). Until then, and always
without the packages, every helper answers the shared no-op :data:`NO_SPAN` after one
comparison.

Trace context comes in W3C Trace Context form (``traceparent``/``tracestate``), through the
configured propagators: in the HTTP request's headers (:class:`HttpContext`, for the HTTP
server span) and, per MCP request, in ``params._meta`` (MCP SEP-414). The tool's span takes the
client's context as its parent, ``_meta``'s first and the header's otherwise
(:func:`tool_parent`), and links the in-process span it runs under.

What a span may hold (SECURITY-CASES S92): route templates, fixed names (methods this server
implements, registered tool names, grant types, outcomes, OAuth error codes), protocol
versions, status codes, and the *kind* of a JSON-RPC id. Never a token, secret, code, password,
header value, query string, JSON-RPC id or argument value; exceptions are recorded by their
type only (their messages may quote arguments).
"""

from __future__ import annotations

import contextvars
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.context import Context as OtelContext
    from opentelemetry.trace import Span as OtelSpan
    from opentelemetry.trace import Tracer, TracerProvider

#: The instrumentation scope of every span this deployment makes.
SCOPE = "charter"
Attribute = str | int | bool

_tracer: Tracer | None = None
#: The trace context the HTTP request's headers carried (set by :class:`HttpContext`).
_http_parent: contextvars.ContextVar[OtelContext | None] = contextvars.ContextVar(
    "charter_http_parent", default=None
)
#: The tool span open in this task, so that the tool's code can note how it ended.
_tool_span: contextvars.ContextVar[Span | None] = contextvars.ContextVar(
    "charter_tool_span", default=None
)


def install(provider: TracerProvider) -> None:
    """Make spans with ``provider`` from now on (the API's or the SDK's provider)."""
    global _tracer
    _tracer = provider.get_tracer(SCOPE)


def uninstall() -> None:
    """Stop making spans."""
    global _tracer
    _tracer = None


def enabled() -> bool:
    """True when spans are being made."""
    return _tracer is not None


class NoSpan:
    """The span of tracing turned off: does nothing, costs nothing."""

    def __enter__(self) -> NoSpan:
        return self

    def __exit__(self, *_exc: object) -> None:
        return None

    def set(self, key: str, value: Attribute) -> None:
        """Ignored."""

    def setdefault(self, key: str, value: Attribute) -> None:
        """Ignored."""

    def fail(self) -> None:
        """Ignored."""


NO_SPAN = NoSpan()


class Span:
    """An open span (a context manager making it current); attributes are set with
    :meth:`set`. An exception leaving it marks the span an error with only its type."""

    def __init__(
        self,
        tracer: Tracer,
        name: str,
        kind: str,
        attributes: Mapping[str, Attribute],
        parent: OtelContext | None,
        link_current: bool,
    ) -> None:
        from opentelemetry import trace

        links = []
        if link_current:
            current = trace.get_current_span().get_span_context()
            if current.is_valid:
                links.append(trace.Link(current))
        self._otel: OtelSpan = tracer.start_span(
            name,
            context=parent,
            kind=trace.SpanKind[kind.upper()],
            attributes=dict(attributes),
            links=links,
            record_exception=False,
            set_status_on_exception=False,
        )
        self._scope = trace.use_span(self._otel, end_on_exit=True)
        self._noted: set[str] = set()

    def __enter__(self) -> Span:
        self._scope.__enter__()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if kind is not None:
            self._otel.set_attribute("error.type", kind.__qualname__)
            self.fail()
        self._scope.__exit__(None, None, None)

    def set(self, key: str, value: Attribute) -> None:
        """Set an attribute (see the module docstring for what may be one)."""
        self._otel.set_attribute(key, value)
        self._noted.add(key)

    def setdefault(self, key: str, value: Attribute) -> None:
        """Set an attribute unless :meth:`set` has set it already."""
        if key not in self._noted:
            self.set(key, value)

    def fail(self) -> None:
        """Mark the span an error (no description: descriptions may quote input)."""
        from opentelemetry.trace import StatusCode

        self._otel.set_status(StatusCode.ERROR)


def span(
    name: str,
    *,
    kind: str = "internal",
    attributes: Mapping[str, Attribute] | None = None,
    parent: OtelContext | None = None,
    link_current: bool = False,
) -> Span | NoSpan:
    """A span named ``name`` (a child of the current span, or of ``parent``), or
    :data:`NO_SPAN` when tracing is off. ``kind``: internal, server, client."""
    if _tracer is None:
        return NO_SPAN
    return Span(_tracer, name, kind, attributes or {}, parent, link_current)


def mcp_span(method: str, era: str, version: str | None, request_id: object) -> Span | NoSpan:
    """The span of one MCP request, ``mcp <method>`` (``method``: one this server implements,
    else ``other``); the JSON-RPC id only by its kind."""
    if _tracer is None:
        return NO_SPAN
    attributes: dict[str, Attribute] = {
        "mcp.method.name": method,
        "charter.mcp.era": era,
        "charter.jsonrpc.request_id_kind": id_kind(request_id),
    }
    if version:
        attributes["mcp.protocol.version"] = version
    return Span(_tracer, f"mcp {method}", "internal", attributes, None, False)


def extract(carrier: Mapping[str, Any]) -> OtelContext | None:
    """The valid trace context in ``carrier`` (``traceparent``/``tracestate`` keys), else
    None. Values that are not strings are ignored."""
    if _tracer is None or not isinstance(carrier, Mapping):
        return None
    fields = {k.lower(): v for k, v in carrier.items() if isinstance(k, str) and isinstance(v, str)}
    if "traceparent" not in fields:
        return None
    from opentelemetry import propagate, trace

    context = propagate.extract(fields)
    if not trace.get_current_span(context).get_span_context().is_valid:
        return None
    return context


class HttpContext:
    """Holds the HTTP request's trace context for the request's spans (see :func:`tool_parent`)."""

    def __init__(self, headers: list[tuple[bytes, bytes]]) -> None:
        carrier = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in headers
            if name.lower() in (b"traceparent", b"tracestate", b"baggage")
        }
        self.context = extract(carrier)
        self._token: contextvars.Token[OtelContext | None] | None = None

    def __enter__(self) -> OtelContext | None:
        self._token = _http_parent.set(self.context)
        return self.context

    def __exit__(self, *_exc: object) -> None:
        if self._token is not None:
            _http_parent.reset(self._token)


def tool_parent(meta: object) -> OtelContext | None:
    """The parent of a tool's span: the context in ``params._meta`` (SEP-414), else the HTTP
    request's, else None (the current span)."""
    if _tracer is None:
        return None
    found = extract(meta) if isinstance(meta, Mapping) else None
    return found if found is not None else _http_parent.get()


class ToolSpan:
    """Makes the tool span current for :func:`note_tool_outcome` while it is open."""

    def __init__(self, opened: Span) -> None:
        self.span = opened
        self._token: contextvars.Token[Span | None] | None = None

    def __enter__(self) -> Span:
        self.span.__enter__()
        self._token = _tool_span.set(self.span)
        return self.span

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._token is not None:
            _tool_span.reset(self._token)
        self.span.__exit__(kind, exc, tb)


#: The attribute holding how a tool call ended: ok, error, validation (or raised).
TOOL_OUTCOME = "charter.tool.outcome"


def tool_span(tool_name: str, meta: object) -> ToolSpan | NoSpan:
    """The span of one call of the registered tool ``tool_name``, ``tools/call <name>``."""
    if _tracer is None:
        return NO_SPAN
    parent = tool_parent(meta)
    opened = Span(
        _tracer,
        f"tools/call {tool_name}",
        "server" if parent is not None else "internal",
        {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": tool_name},
        parent,
        link_current=parent is not None,
    )
    return ToolSpan(opened)


def note_tool_outcome(outcome: str) -> None:
    """Tell the open tool span how the call ended (a fixed word: ``validation``…)."""
    if _tracer is None:
        return
    current = _tool_span.get()
    if current is not None:
        current.set(TOOL_OUTCOME, outcome)


def id_kind(request_id: object) -> str:
    """The kind of a JSON-RPC id (its value may be anything a client chose)."""
    if request_id is None:
        return "none"
    return "string" if isinstance(request_id, str) else "number"
