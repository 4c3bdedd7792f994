"""Logging of a deployment: redaction of secrets, request ids, JSON lines."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import logging.config
from collections.abc import Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from authserver.ops.logging_setup import (
    REDACTED,
    REQUEST_ID,
    ConsoleHandler,
    JsonFormatter,
    RedactingFilter,
    RequestIdFilter,
    RequestIdMiddleware,
    TextFormatter,
    logging_config,
    redact,
)

JWT = "eyJhbGciOiJFUzI1NiIsInR5cCI6ImF0K2p3dCJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXZhbHVl"
REFRESH = "rT0k3n-4bcdefghijklmnopqrstuvwxyz0123456789_"


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (f"Authorization: Bearer {JWT}", JWT),
        ("authorization: basic Y2xpZW50OnNlY3JldA==", "Y2xpZW50OnNlY3JldA=="),
        ("grant_type=authorization_code&code=abc123&code_verifier=vvv", "abc123"),
        ("grant_type=authorization_code&code=abc123&code_verifier=vvv", "vvv"),
        ('{"access_token": "opaque-at", "token_type": "Bearer"}', "opaque-at"),
        ("{'client_secret': 's3cr3t'}", "s3cr3t"),
        ("password=hunter2 user=alice", "hunter2"),
        (f"refresh {REFRESH} rotated", REFRESH),
        (f"token {JWT}.", JWT),
    ],
)
def test_redact_removes_secrets(text: str, secret: str) -> None:
    cleaned = redact(text)
    assert secret not in cleaned
    assert REDACTED in cleaned


def test_redact_keeps_ordinary_text() -> None:
    text = "client dcr_Ck79Wh8TFCK6d2cg registered from 127.0.0.1; token_type=Bearer"
    assert redact(text) == text


def _capture(formatter: logging.Formatter) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.addFilter(RequestIdFilter())
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger(f"charter.test.{id(stream)}")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger, stream


def test_filter_redacts_arguments_and_exception_text() -> None:
    logger, stream = _capture(TextFormatter())
    logger.info("refresh with %s for %s", REFRESH, "alice")
    try:
        raise ValueError(f"bad token {JWT}")
    except ValueError:
        logger.exception("failed with Authorization: Bearer %s", JWT)
    output = stream.getvalue()
    assert REFRESH not in output
    assert JWT not in output
    assert "for alice" in output
    assert "ValueError: bad token [REDACTED]" in output


def test_json_lines_carry_the_request_id() -> None:
    logger, stream = _capture(JsonFormatter())
    token = REQUEST_ID.set("req-123")
    try:
        logger.warning("issued code=%s", "zzz")
    finally:
        REQUEST_ID.reset(token)
    logger.info("outside a request")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["request_id"] == "req-123"
    assert first["level"] == "WARNING"
    assert first["message"] == f"issued code={REDACTED}"
    assert second["request_id"] is None
    assert first["ts"].endswith("Z")


def test_logging_config_is_accepted_by_dictconfig() -> None:
    for log_format in ("text", "json"):
        config = logging_config(log_format, "INFO")  # type: ignore[arg-type]
        assert config["handlers"]["console"]["filters"] == ["request_id", "redact"]
        json.dumps(config)  # plain data: uvicorn hands it to worker processes


@pytest.fixture
def access_log() -> Iterator[list[logging.LogRecord]]:
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("charter.access")
    handler = Collect()
    handler.addFilter(RequestIdFilter())
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield records
    logger.removeHandler(handler)
    logger.setLevel(previous)


def _app() -> RequestIdMiddleware:
    async def echo(_request: Request) -> PlainTextResponse:
        return PlainTextResponse(REQUEST_ID.get() or "")

    return RequestIdMiddleware(Starlette(routes=[Route("/echo", echo)]))


async def test_request_id_is_generated_echoed_and_logged(
    access_log: list[logging.LogRecord],
) -> None:
    transport = httpx.ASGITransport(app=_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        response = await http.get("/echo", params={"code": "secret-code"})
        given = await http.get("/echo", headers={"X-Request-ID": "trace-42"})
        hostile = await http.get("/echo", headers={"X-Request-ID": "a b" + "x" * 80})
    assert response.headers["x-request-id"] == response.text
    assert len(response.text) == 16
    assert given.headers["x-request-id"] == given.text == "trace-42"
    assert hostile.text != "a b" + "x" * 80
    assert len(hostile.text) == 16
    first = access_log[0]
    assert first.getMessage().startswith("GET /echo 200 ")
    assert "secret-code" not in first.getMessage()  # the query string is never logged
    assert first.request_id == response.text  # type: ignore[attr-defined]
    assert access_log[1].request_id == "trace-42"  # type: ignore[attr-defined]


async def test_access_line_of_a_token_path_is_redacted_in_message_and_fields() -> None:
    logger, stream = _capture(JsonFormatter())
    middleware = _app()
    middleware._logger = logger
    transport = httpx.ASGITransport(app=middleware)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        for _ in range(2):  # the second line comes from the remembered redaction
            await http.get(f"/register/{REFRESH}")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 2
    for line in lines:
        assert REFRESH not in json.dumps(line)
        assert line["message"].startswith(f"GET /register/{REDACTED} 404 ")
        assert line["path"] == f"/register/{REDACTED}"


@pytest.mark.parametrize("log_format", ["text", "json"])
async def test_direct_access_lines_equal_what_logging_writes(
    log_format: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The access line written straight to the console handler (no LogRecord) is the line the
    configured formatter writes for the same request, save the time stamp; and with another
    handler on the way (a capture, a user's handler) the record goes through logging."""
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    saved = logging.root.handlers[:], logging.root.level
    logging.config.dictConfig(logging_config(log_format, "INFO"))  # type: ignore[arg-type]
    try:
        transport = httpx.ASGITransport(app=_app(), client=("203.0.113.9", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            direct = await http.get("/echo", headers={"X-Request-ID": "req-direct"})
            # The same request through logging: a second handler disables the direct path.
            extra_handler = logging.NullHandler()
            logging.root.addHandler(extra_handler)
            try:
                logged = await http.get("/echo", headers={"X-Request-ID": "req-direct"})
            finally:
                logging.root.removeHandler(extra_handler)
    finally:
        logging.root.handlers[:] = saved[0]
        logging.root.setLevel(saved[1])
    assert direct.status_code == logged.status_code == 200
    first, second = [line for line in stream.getvalue().splitlines() if "charter.access" in line]

    def without_time(line: str) -> object:
        if log_format == "json":
            entry = json.loads(line)
            return {k: v for k, v in entry.items() if k not in {"ts", "duration_ms", "message"}}
        return line.split(" ", 1)[1].rsplit(" ", 1)[0]

    assert without_time(first) == without_time(second)
    if log_format == "json":
        entry = json.loads(first)
        assert entry["request_id"] == "req-direct"
        assert entry["client"] == "203.0.113.9"
        assert entry["message"].startswith("GET /echo 200 ")
        assert entry["ts"].endswith("Z")
    else:
        assert " INFO    [req-direct] charter.access: GET /echo 200 " in first


async def test_held_access_lines_are_written_in_order_once_per_loop_pass() -> None:
    """Access lines wait for the end of the loop's pass and go out in one write; another
    record, or a flush, writes them first, so the order of lines is kept."""
    writes: list[str] = []

    class Recording(io.StringIO):
        def write(self, text: str) -> int:
            writes.append(text)
            return len(text)

    handler = ConsoleHandler(Recording())
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.hold("first\n")
    handler.hold("second\n")
    assert writes == []
    await asyncio.sleep(0)
    assert writes == ["first\nsecond\n"]
    handler.hold("third\n")
    handler.handle(logging.makeLogRecord({"msg": "an error", "levelno": logging.ERROR}))
    assert writes[1:] == ["third\n", "an error\n"]
    handler.hold("fourth\n")
    handler.flush()
    assert writes[-1] == "fourth\n"
    await asyncio.sleep(0)
    assert writes[-1] == "fourth\n"  # nothing is written twice


def test_access_lines_outside_an_event_loop_are_written_at_once() -> None:
    stream = io.StringIO()
    handler = ConsoleHandler(stream)
    handler.hold("no loop here\n")
    assert stream.getvalue() == "no loop here\n"


async def test_many_held_access_lines_are_written_before_the_pass_ends() -> None:
    stream = io.StringIO()
    handler = ConsoleHandler(stream)
    for index in range(ConsoleHandler.MOST_HELD):
        handler.hold(f"{index}\n")
    assert stream.getvalue().count("\n") == ConsoleHandler.MOST_HELD


async def test_a_failing_stream_never_fails_the_caller(capsys: pytest.CaptureFixture[str]) -> None:
    """Held lines that cannot be written are reported, as logging reports a failing handler,
    whichever way they go out: at once, at the end of the pass, or before another record."""

    class Broken(io.StringIO):
        def write(self, text: str) -> int:
            raise OSError("stream gone")

    handler = ConsoleHandler(Broken())
    for _ in range(ConsoleHandler.MOST_HELD):
        handler.hold("line\n")  # the last one writes at once
    handler.hold("line\n")
    await asyncio.sleep(0)  # the end of the pass
    handler.hold("line\n")
    handler.handle(logging.makeLogRecord({"msg": "an error", "levelno": logging.ERROR}))
    assert "stream gone" in capsys.readouterr().err
