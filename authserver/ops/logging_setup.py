"""Logging of a deployment: readable or JSON lines, a request id on each, secrets redacted.

- :class:`RequestIdMiddleware` (plain ASGI) gives every HTTP request an id (a sane incoming
  ``X-Request-ID`` or a fresh random one), keeps it and the client's address in context
  variables for the request's duration (the audit trail records both), echoes the id in the
  response and writes one access line per request (method, path without the query string,
  status, duration); health-check paths only at ``debug``.
- :class:`RequestIdFilter` copies the current id onto every record (``-`` outside a request).
- :class:`RedactingFilter` rewrites every record's message, arguments and exception text so that
  bearer credentials, JWTs, long opaque tokens and ``secret=value`` pairs never reach a handler
  (RFC 6750 §5.3, RFC 9700 §4.15: tokens must not leak into logs).
- :func:`logging_config` returns a :func:`logging.config.dictConfig` dictionary, usable by
  :func:`configure_logging` and by uvicorn (``log_config=``), also in worker processes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import logging.config
import os
import random
import re
import time
import traceback
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Protocol

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from authserver.config.settings import LogFormat
from authserver.endpoints.client_address import normalized_ip

#: The id of the request being served (None outside a request).
REQUEST_ID: ContextVar[str | None] = ContextVar("charter_request_id", default=None)
#: The client address of the request being served, normalized (None outside a request).
CLIENT_ADDRESS: ContextVar[str | None] = ContextVar("charter_client_address", default=None)

REQUEST_ID_HEADER = "x-request-id"
#: Source of fresh request ids: unique, not secret (they are echoed and logged), so a seeded
#: generator rather than a system call per request; reseeded in a forked child.
_REQUEST_IDS = random.Random()  # noqa: S311 - not a secret (see above)
os.register_at_fork(after_in_child=_REQUEST_IDS.seed)
_INCOMING_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
ACCESS_LOGGER = "charter.access"
REDACTED = "[REDACTED]"

#: What is redacted, in order. Each pattern keeps its first group (the name) when it has one.
_SENSITIVE_KEYS = (
    r"access_token|refresh_token|id_token|client_secret|registration_access_token|"
    r"code_verifier|code|password|passwd|secret|token|assertion|authorization|cookie|"
    r"set-cookie|key_encryption_key|api_key|apikey"
)
_REDACTIONS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Authorization: Bearer xyz / Basic xyz / DPoP xyz (header dumps, repr of headers).
    (re.compile(r"(?i)\b(bearer|basic|dpop)(\s+)[A-Za-z0-9._~+/=-]+"), r"\1\2" + REDACTED),
    # "access_token": "..."  'password': '...'  (JSON, dict reprs).
    (
        re.compile(rf"(?i)([\"']?(?:{_SENSITIVE_KEYS})[\"']?\s*[:=]\s*)([\"'])[^\"']*\2"),
        r"\1\2" + REDACTED + r"\2",
    ),
    # access_token=...  code=...  (query strings, form bodies, key=value logs).
    (
        re.compile(rf"(?i)(\b(?:{_SENSITIVE_KEYS})=)[^\s&\"',;]+"),
        r"\1" + REDACTED,
    ),
    # Anything shaped like a JWT / JWS / JWE compact serialization.
    (re.compile(r"\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_.-]*"), REDACTED),
    # Long opaque tokens (refresh tokens, codes: ≥ 40 base64url characters).
    (re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{40,}(?![A-Za-z0-9_-])"), REDACTED),
)


def redact(text: str) -> str:
    """``text`` with credentials, token-looking values and ``secret=value`` pairs replaced."""
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


#: Marks a record whose message and fields were built from redacted parts (access lines).
PRE_REDACTED = "charter_pre_redacted"
_ACCESS_HEADS: dict[tuple[str, str], tuple[str, str]] = {}
_ACCESS_HEADS_MAX = 2048


def access_head(method: str, path: str) -> tuple[str, str]:
    """``redact("METHOD path")`` and the redacted path, remembered for the paths served most."""
    key = (method, path)
    found = _ACCESS_HEADS.get(key)
    if found is None:
        head = redact(f"{method} {path}")
        found = head, head.partition(" ")[2]
        if len(_ACCESS_HEADS) >= _ACCESS_HEADS_MAX:
            _ACCESS_HEADS.clear()
        _ACCESS_HEADS[key] = found
    return found


class RedactingFilter(logging.Filter):
    """Rewrites each record so that no handler ever sees a token or a secret.

    An access line is built from :func:`access_head` (already redacted) and numbers, and is
    marked :data:`PRE_REDACTED`; it is not scanned again.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, PRE_REDACTED, False):
            return True
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not hide the event
            message = f"{record.msg!r} {record.args!r}"
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
            record.exc_info = None
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class RequestIdFilter(logging.Filter):
    """Sets ``record.request_id`` to the id of the current request, or ``-``."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get() or "-"
        return True


class TextFormatter(logging.Formatter):
    """``2026-01-01T00:00:00Z INFO  [request-id] logger: message``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s [%(request_id)s] %(name)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return _timestamp(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``logger``, ``request_id``, ``message``."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "request_id": _request_id_of(record),
            "message": record.getMessage(),
        }
        for name in ("method", "path", "status", "duration_ms", "client"):
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)


def _request_id_of(record: logging.LogRecord) -> str | None:
    value = getattr(record, "request_id", None) or REQUEST_ID.get()
    return value if isinstance(value, str) and value != "-" else None


_SECOND: list[tuple[int, str]] = [(-1, "")]


def _timestamp(record: logging.LogRecord) -> str:
    return _stamp(record.created, record.msecs)


def _stamp(created: float, msecs: float | None = None) -> str:
    second = int(created)
    cached_second, prefix = _SECOND[0]  # the formatted second, made once per second
    if cached_second != second:
        prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S.")
        _SECOND[0] = (second, prefix)
    millis = int(msecs) if msecs is not None else int((created - second) * 1000)
    return f"{prefix}{millis:03d}Z"


class ConsoleHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The deployment's stderr handler; access lines may be written to it directly
    (:func:`write_access_line`).

    Those lines are held until the end of the event loop's pass and then written together:
    one write for every request answered in the pass rather than one each. Any other record,
    a flush and closing the handler (logging's shutdown at exit) write what is held first,
    so lines keep their order; a worker killed outright loses at most one pass's lines.
    """

    #: Held lines beyond which they are written at once.
    MOST_HELD = 256

    def __init__(self, stream: Any = None) -> None:
        super().__init__(stream)
        self._held: list[str] = []

    def hold(self, text: str) -> None:
        """Write ``text`` (whole lines) at the end of the loop's pass, or now outside a loop."""
        with self.lock:  # type: ignore[union-attr]
            self._held.append(text)
            if len(self._held) == 1:
                try:
                    asyncio.get_running_loop().call_soon(self.flush)
                    return
                except RuntimeError:  # no loop in this thread
                    pass
            elif len(self._held) < self.MOST_HELD:
                return
            self._write_held()

    def _write_held(self) -> None:
        if self._held:
            text = "".join(self._held)
            self._held.clear()
            try:
                self.stream.write(text)
            except Exception:  # as logging.Handler.handleError would: never fail a request
                if logging.raiseExceptions:
                    traceback.print_exc(limit=1)

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._write_held()
            super().flush()

    def emit(self, record: logging.LogRecord) -> None:
        self._write_held()  # under the handler's lock (logging.Handler.handle)
        super().emit(record)


def _direct_console(logger: logging.Logger) -> ConsoleHandler | None:
    """The console handler an access record of ``logger`` would reach, when it is the only
    handler on the way and no filter or level other than ours stands there; else None (then
    the record goes through :mod:`logging` as usual, e.g. to a test's capture handler)."""
    if logger.handlers or logger.filters or not logger.propagate:
        return None
    parent = logger.parent
    while parent is not None and parent.parent is not None:  # up to the root
        if parent.handlers or parent.filters or not parent.propagate:
            return None
        parent = parent.parent
    root = logging.root
    if len(root.handlers) != 1 or root.filters:
        return None
    handler = root.handlers[0]
    if type(handler) is not ConsoleHandler or handler.level > logging.INFO:
        return None
    return handler


def write_access_line(
    handler: ConsoleHandler,
    request_id: str,
    head: str,
    status: int,
    duration_ms: float,
    extra: dict[str, Any],
) -> bool:
    """Write one INFO access line as the handler's formatter would, without building a
    :class:`logging.LogRecord` (a seventh of the hot path's time). False when the formatter
    is not one of ours (the caller then logs the record as usual)."""
    formatter = handler.formatter
    created = time.time()
    stamp = _stamp(created)
    if type(formatter) is TextFormatter:
        message = f"{head} {status} {duration_ms:.1f}ms"
        line = f"{stamp} INFO    [{request_id}] {ACCESS_LOGGER}: {message}"
    elif type(formatter) is JsonFormatter:
        entry: dict[str, Any] = {
            "ts": stamp,
            "level": "INFO",
            "logger": ACCESS_LOGGER,
            "request_id": request_id if request_id != "-" else None,
            "message": f"{head} {status} {duration_ms:.1f}ms",
        }
        entry.update((name, value) for name, value in extra.items() if value is not None)
        line = json.dumps(entry, ensure_ascii=False)
    else:
        return False
    handler.hold(line + handler.terminator)
    return True


def logging_config(log_format: LogFormat = "text", level: str = "INFO") -> dict[str, Any]:
    """A ``dictConfig`` for the deployment and uvicorn: one stderr handler with both filters."""
    formatter = JsonFormatter if log_format == "json" else TextFormatter
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "request_id": {"()": f"{__name__}.RequestIdFilter"},
            "redact": {"()": f"{__name__}.RedactingFilter"},
        },
        "formatters": {"charter": {"()": f"{__name__}.{formatter.__name__}"}},
        "handlers": {
            "console": {
                "class": f"{__name__}.ConsoleHandler",
                "stream": "ext://sys.stderr",
                "formatter": "charter",
                "filters": ["request_id", "redact"],
            }
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            # uvicorn's own handlers are replaced by the root one; its access log by ours.
            "uvicorn": {"handlers": [], "propagate": True, "level": level},
            "uvicorn.error": {"handlers": [], "propagate": True, "level": level},
            "uvicorn.access": {"handlers": [], "propagate": False, "level": "WARNING"},
            # SQL statements can carry token hashes and are noisy: never below WARNING.
            "sqlalchemy": {"handlers": [], "propagate": True, "level": "WARNING"},
            "httpx": {"handlers": [], "propagate": True, "level": "WARNING"},
        },
    }


def configure_logging(log_format: LogFormat = "text", level: str = "INFO") -> None:
    """Install :func:`logging_config` in this process."""
    logging.config.dictConfig(logging_config(log_format, level))


class RequestObserver(Protocol):
    """What :class:`RequestIdMiddleware` reports to besides the access log (the metrics,
    :class:`authserver.ops.metrics.RequestMetrics`), from its one ``send`` wrapper."""

    def stream_opened(self) -> None: ...

    def stream_closed(self) -> None: ...

    def finished(self, path: str, method: str, status: int, seconds: float) -> None: ...


_REQUEST_ID_NAME = REQUEST_ID_HEADER.encode()
_REQUEST_ID_LENGTH = len(_REQUEST_ID_NAME)
_CONTENT_TYPE = b"content-type"
#: Lengths of the response header names :func:`_with_request_id` looks for.
_WATCHED_LENGTHS = frozenset({_REQUEST_ID_LENGTH, len(_CONTENT_TYPE)})
_EVENT_STREAM = b"text/event-stream"


class RequestIdMiddleware:
    """Plain ASGI middleware: request id in a context variable, the response and the access log,
    and the request's metrics when an ``observer`` is given.

    It never buffers the body, so Server-Sent Events streams pass through unchanged.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        access_log: bool = True,
        quiet_paths: frozenset[str] = frozenset(),
        observer: RequestObserver | None = None,
    ) -> None:
        self.app = app
        self.access_log = access_log
        #: Paths logged at ``debug`` only (health checks polled every second).
        self.quiet_paths = quiet_paths
        self.observer = observer
        self._logger = logging.getLogger(ACCESS_LOGGER)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope) or f"{_REQUEST_IDS.getrandbits(64):016x}"
        token = REQUEST_ID.set(request_id)
        peer = scope.get("client")
        address_token = CLIENT_ADDRESS.set(normalized_ip(peer[0]) if peer and peer[0] else None)
        started = time.perf_counter()
        status = 500
        streaming = False
        observer = self.observer
        id_header = (_REQUEST_ID_NAME, request_id.encode())

        async def send_with_id(message: Message) -> None:
            nonlocal status, streaming
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message, streaming = _with_request_id(message, id_header)
                if streaming and observer is not None:
                    observer.stream_opened()
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if observer is not None:
                _observe_end(observer, scope, status, streaming, started)
            if self.access_log:
                self._log_access(scope, request_id, status, started)
            REQUEST_ID.reset(token)
            CLIENT_ADDRESS.reset(address_token)

    def _log_access(self, scope: Scope, request_id: str, status: int, started: float) -> None:
        if not self._logger.isEnabledFor(logging.INFO):
            return
        duration_ms = round((time.perf_counter() - started) * 1000, 1)
        method = str(scope.get("method", "-"))
        # The path only: query strings carry codes, states and sometimes tokens.
        head, path = access_head(method, str(scope.get("root_path", "")) + str(scope["path"]))
        client = scope.get("client")
        address = client[0] if client else None
        extra = {
            "method": method,
            "path": path,
            "status": status,
            "duration_ms": duration_ms,
            "client": address,
        }
        if path in self.quiet_paths:
            if self._logger.isEnabledFor(logging.DEBUG):
                self._logger.debug(
                    "%s %s %.1fms", head, status, duration_ms, extra={**extra, PRE_REDACTED: True}
                )
            return
        console = _direct_console(self._logger)
        if console is not None and write_access_line(
            console, request_id, head, status, duration_ms, extra
        ):
            return
        self._logger.info(
            "%s %s %.1fms", head, status, duration_ms, extra={**extra, PRE_REDACTED: True}
        )


def _with_request_id(message: Message, id_header: tuple[bytes, bytes]) -> tuple[Message, bool]:
    """A response start with our ``X-Request-ID`` (replacing any), and whether it starts an
    event stream."""
    streaming = False
    headers = []
    for header in message.get("headers", ()):
        name = header[0]
        if len(name) in _WATCHED_LENGTHS:  # only then is it worth lower-casing
            name = name.lower()
            if name == _REQUEST_ID_NAME:
                continue
            if name == _CONTENT_TYPE and header[1].startswith(_EVENT_STREAM):
                streaming = True
        headers.append(header)
    headers.append(id_header)
    return {**message, "headers": headers}, streaming


def _observe_end(
    observer: RequestObserver, scope: Scope, status: int, streaming: bool, started: float
) -> None:
    if streaming:
        observer.stream_closed()
    seconds = time.perf_counter() - started
    method = str(scope.get("method", "other"))
    observer.finished(str(scope.get("path", "")), method, status, seconds)


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        # The length first: lower-casing every field name costs more than the search.
        if len(name) == _REQUEST_ID_LENGTH and name.lower() == _REQUEST_ID_NAME:
            candidate = value.decode("latin-1")
            return candidate if _INCOMING_ID.fullmatch(candidate) else None
    return None
