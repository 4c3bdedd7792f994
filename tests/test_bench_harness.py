"""The benchmark harness's own parsing and reporting (``bench/``), on fixtures; nothing timed."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import h11
import pytest

from bench._common import Section
from bench._procs import BenchError
from bench._report import cell, render
from bench._streams import Holder, RawClient, get_request, listen_request, open_sessions
from bench._wrk import HttpRequest, lua_script, parse_summary, ran_out
from bench.profile import analyse, area_of, parse_frame, parse_raw
from tests.resourceserver.mcp.test_tasks import engine_for, tools
from tests.support.modern_mcp import modern_app, on_socket

WRK_OUTPUT = (
    "Running 10s test @ http://127.0.0.1:40000\n"
    "  1 threads and 32 connections\n"
    'BENCH-WRK {"requests":20000,"duration_us":10000000,"connect":0,"read":2,"write":0,'
    '"status":5,"timeout":1,"p50_us":1500,"p90_us":3000,"p99_us":12500,"max_us":40000}\n'
)


def test_wrk_summary_line_is_read() -> None:
    result = parse_summary(WRK_OUTPUT)
    assert result.requests == 20000
    assert result.duration_s == 10.0
    assert result.rps == 2000.0
    assert result.socket_errors == 3
    assert result.status_errors == 5
    assert result.errors == 8
    assert (result.p50_ms, result.p90_ms, result.p99_ms, result.max_ms) == (1.5, 3.0, 12.5, 40.0)


def test_wrk_output_without_summary_is_an_error() -> None:
    with pytest.raises(BenchError, match="no summary"):
        parse_summary("unable to connect to 127.0.0.1:1 Connection refused\n")


def test_lua_script_escapes_the_body_and_sets_headers() -> None:
    body = '{"text": "a \\"quoted\\" line\\n"}'
    script = lua_script(HttpRequest("POST", "/mcp", {"Authorization": "Bearer t"}, body=body))
    assert 'wrk.method = "POST"' in script
    assert 'wrk.headers["Authorization"] = "Bearer t"' in script
    assert 'wrk.body = "{\\"text\\": \\"a \\\\\\"quoted\\\\\\" line\\\\n\\"}"' in script
    assert "BENCH-WRK" in script
    assert "io.lines" not in script


def test_lua_script_reads_single_use_bodies(tmp_path: Path) -> None:
    bodies = tmp_path / "codes.bodies"
    once = lua_script(HttpRequest("POST", "/token", {}, bodies=bodies))
    assert "CYCLE = false" in once
    assert "wrk.thread:stop()" in once
    cycling = lua_script(HttpRequest("POST", "/token", {}, bodies=bodies, cycle=True))
    assert "CYCLE = true" in cycling


def test_results_markdown_has_machine_command_and_tables() -> None:
    section = Section(
        "Hot path",
        "Some words.",
        ["server", "req/s", "ratio"],
        [["a | b", 12345, float("nan")], ["c", 3, 0.123]],
        ["a note"],
    )
    text = render(
        command=".venv/bin/python -m bench.run --quick",
        date="2026-12-02 05:00 UTC",
        machine="AMD EPYC, 2 cores, Linux 6, Python 3.11.7 (cpython)",
        load_before="1.00 1.00 1.00",
        load_after="2.00 2.00 2.00",
        peers=["mcp venv (Python 3.11.7): mcp 2.3.0"],
        sections=[section],
        remark="Busy machine.",
    )
    assert "- Machine: AMD EPYC, 2 cores" in text
    assert "- Command: `.venv/bin/python -m bench.run --quick`" in text
    assert "| server | req/s | ratio |" in text
    assert "| a \\| b | 12,345 | n/a |" in text
    assert "| c | 3 | 0.12 |" in text
    assert "- a note" in text
    assert cell(1234.4) == "1,234"


ROOT = "main (authserver/cli.py:172)"
POST = "post (resourceserver/mcp/transport.py:200)"
RAW = "\n".join(
    [
        f"{ROOT};run (asyncio/runners.py:118);__call__ (starlette/middleware/errors.py:164) 30",
        f"{ROOT};{POST};execute (sqlalchemy/engine/base.py:1400) 50",
        f"{ROOT};{POST};dumps (json/__init__.py:231) 20",
        "garbage line",
    ]
)


def test_profile_stacks_are_ranked_by_area() -> None:
    stacks = parse_raw(RAW)
    assert len(stacks) == 3
    found = dict(analyse(stacks)["areas"])
    assert found == {"SQLAlchemy": 0.5, "Starlette routing + middleware": 0.3, "JSON": 0.2}
    charter = dict(analyse(stacks)["charter"])
    assert charter["main (authserver/cli.py)"] == 1.0
    assert charter["post (resourceserver/mcp/transport.py)"] == 0.7
    assert area_of(parse_frame("wait (threading.py:320)")) == "scheduling (asyncio, anyio, threads)"


def test_a_single_use_run_that_used_its_bodies_is_flagged(tmp_path: Path) -> None:
    request = HttpRequest("POST", "/token", {}, bodies=tmp_path / "b", body_count=100)
    used_up = parse_summary(WRK_OUTPUT.replace('"requests":20000', '"requests":95'))
    assert ran_out(request, used_up, connections=8)
    assert not ran_out(
        request, parse_summary(WRK_OUTPUT.replace('"requests":20000', '"requests":50')), 8
    )
    assert not ran_out(HttpRequest("POST", "/token", {}, body="x"), used_up, 8)


def test_a_run_without_answers_has_no_latency() -> None:
    silent = parse_summary(WRK_OUTPUT.replace('"requests":20000', '"requests":0'))
    assert silent.rps == 0
    assert silent.p99_ms != silent.p99_ms  # NaN: shown as n/a, never as 0 ms


def parsed(raw: bytes) -> tuple[h11.Request, dict[str, str], bytes]:
    """``raw`` read by a real HTTP/1.1 parser (h11): the request, its headers, its body."""
    connection = h11.Connection(h11.SERVER)
    connection.receive_data(raw)
    request = connection.next_event()
    assert isinstance(request, h11.Request)
    body = b""
    while True:
        event = connection.next_event()
        if isinstance(event, h11.Data):
            body += event.data
        else:
            assert isinstance(event, h11.EndOfMessage), event
            break
    headers = {name.decode(): value.decode() for name, value in request.headers}
    return request, headers, body


def test_listen_request_is_a_2026_07_28_subscriptions_listen_post() -> None:
    request, headers, body = parsed(listen_request("127.0.0.1", 4000, "tok", 7))
    assert (request.method, request.target) == (b"POST", b"/mcp")
    assert headers["authorization"] == "Bearer tok"
    assert headers["mcp-protocol-version"] == "2026-07-28"
    assert headers["mcp-method"] == "subscriptions/listen"
    assert headers["content-type"] == "application/json"
    assert "text/event-stream" in headers["accept"]
    message = json.loads(body)
    assert (message["jsonrpc"], message["id"], message["method"]) == (
        "2.0",
        7,
        "subscriptions/listen",
    )
    assert message["params"]["notifications"] == {"toolsListChanged": True}
    meta = message["params"]["_meta"]
    assert meta["io.modelcontextprotocol/protocolVersion"] == "2026-07-28"
    assert meta["io.modelcontextprotocol/clientCapabilities"] == {}
    assert meta["io.modelcontextprotocol/clientInfo"]["name"] == "charter-bench-streams"


def test_get_request_opens_a_session_stream() -> None:
    request, headers, body = parsed(get_request("127.0.0.1", 4000, "tok", "sess"))
    assert (request.method, request.target, body) == (b"GET", b"/mcp", b"")
    assert headers["mcp-session-id"] == "sess"
    assert headers["mcp-protocol-version"] == "2025-11-25"
    assert headers["accept"] == "text/event-stream"


def test_the_holder_keeps_listen_streams_open_on_a_real_server(tmp_path: Path) -> None:
    engine = engine_for(f"sqlite:///{tmp_path / 'charter.db'}")
    try:
        with on_socket(modern_app(tools(), engine)) as app:
            assert app.base_url is not None

            async def hold() -> tuple[int, int, int]:
                holder = Holder(app.base_url or "", "listen")
                token = app.token()
                await asyncio.gather(
                    *(holder.open_stream((token, str(i))) for i in range(1, 4)),
                    holder.open_stream(("not-a-token", "9")),
                )
                await asyncio.sleep(0.2)
                opened, failed, ended = holder.open, holder.failed, holder.ended_early
                holder.stopping = True
                for task in holder.readers:
                    task.cancel()
                await asyncio.gather(*holder.readers, return_exceptions=True)
                return opened, failed, ended

            assert asyncio.run(hold()) == (3, 1, 0)
    finally:
        engine.dispose()


class _Closed:
    def close(self) -> None:
        pass


def test_the_holder_notes_one_receipt_per_stream_and_fan_out() -> None:
    async def run() -> tuple[list[int], bool]:
        holder = Holder("http://127.0.0.1:1", "listen")
        holder.open = 2
        readers = [asyncio.StreamReader() for _ in range(2)]
        tasks = [asyncio.create_task(holder.drain(r, _Closed())) for r in readers]  # type: ignore[arg-type]
        marker = b"notifications/tools/list_changed"
        readers[0].feed_data(b"data: " + marker + b"\n\n")  # before any mark: not counted
        await asyncio.sleep(0)
        holder.mark()
        counts = [len(holder.received)]
        readers[0].feed_data(b"data: {" + marker[:10])  # split across two reads
        await asyncio.sleep(0)
        readers[0].feed_data(marker[10:] + b"}\n\ndata: " + marker)  # then again: once only
        await asyncio.sleep(0)
        counts.append(len(holder.received))
        readers[1].feed_data(marker)
        await asyncio.sleep(0)
        counts.append(len(holder.received))
        everyone = holder.all_received.is_set()
        holder.stopping = True
        for reader in readers:
            reader.feed_eof()
        await asyncio.gather(*tasks)
        return counts, everyone

    assert asyncio.run(run()) == ([0, 1, 2], True)


def test_the_holder_opens_sessions_over_raw_keep_alive_connections(tmp_path: Path) -> None:
    engine = engine_for(f"sqlite:///{tmp_path / 'charter.db'}")
    try:
        with on_socket(modern_app(tools(), engine)) as app:
            assert app.base_url is not None
            port = int(app.base_url.rsplit(":", 1)[1].split("/")[0])

            async def run() -> list[str | BaseException]:
                token = app.token()
                return await open_sessions(
                    "127.0.0.1", port, [token, token, token, "bad"], 2, False
                )

            results = asyncio.run(run())
            assert all(isinstance(item, str) and item for item in results[:3])
            assert len(set(results[:3])) == 3
            assert isinstance(results[3], RuntimeError)
            assert "401" in str(results[3])
    finally:
        engine.dispose()


def test_the_raw_client_reads_chunked_answers() -> None:
    async def run() -> tuple[int, dict[str, str], bytes]:
        reader = asyncio.StreamReader()
        reader.feed_data(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: b\r\n\r\n"
            b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
        )
        return await RawClient("127.0.0.1", 1)._response(reader)

    status, headers, body = asyncio.run(run())
    assert (status, headers["x-a"], body) == (200, "b", b"abcde")
