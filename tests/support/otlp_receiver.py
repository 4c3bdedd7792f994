"""A tiny OTLP/HTTP trace receiver (``POST /v1/traces``, protobuf) on 127.0.0.1, a free port,
for the length of a test: what exporters sent, decoded with ``opentelemetry-proto``."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span


@dataclass(frozen=True)
class ReceivedSpan:
    """One exported span and the ``service.name`` of its resource."""

    service_name: str
    span: Span

    @property
    def name(self) -> str:
        return self.span.name

    @property
    def trace_id(self) -> int:
        return int.from_bytes(self.span.trace_id, "big")

    @property
    def parent_span_id(self) -> int:
        return int.from_bytes(self.span.parent_span_id, "big")

    @property
    def span_id(self) -> int:
        return int.from_bytes(self.span.span_id, "big")

    def attributes(self) -> dict[str, object]:
        found: dict[str, object] = {}
        for item in self.span.attributes:
            kind = item.value.WhichOneof("value")
            found[item.key] = getattr(item.value, kind) if kind else None
        return found


@dataclass
class OtlpReceiver:
    """What arrived so far at :attr:`endpoint` (``OTEL_EXPORTER_OTLP_ENDPOINT``)."""

    endpoint: str
    requests: list[ExportTraceServiceRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def spans(self) -> list[ReceivedSpan]:
        with self.lock:
            requests = list(self.requests)
        found = []
        for request in requests:
            for resource_spans in request.resource_spans:
                service = ""
                for item in resource_spans.resource.attributes:
                    if item.key == "service.name":
                        service = item.value.string_value
                for scope_spans in resource_spans.scope_spans:
                    found.extend(ReceivedSpan(service, span) for span in scope_spans.spans)
        return found

    def wait_for(self, name: str, timeout: float = 30.0) -> list[ReceivedSpan]:
        """The spans named ``name``, once at least one has arrived."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            named = [span for span in self.spans() if span.name == name]
            if named:
                return named
            time.sleep(0.1)
        raise AssertionError(f"no span {name!r} arrived; got {[s.name for s in self.spans()]}")


@contextmanager
def otlp_receiver() -> Iterator[OtlpReceiver]:
    """Serve ``POST /v1/traces`` until the block ends."""
    receiver = OtlpReceiver("")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.path != "/v1/traces":
                self.send_error(404)
                return
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            with receiver.lock:
                receiver.requests.append(request)
            answer = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
