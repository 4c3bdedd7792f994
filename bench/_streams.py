"""Hold N open MCP streams: ``python -m bench._streams BASE_URL TOKENS_FILE N [--kind K]``.

``--kind get`` (the default): 2025-11-25 GET streams. Each stream is its own MCP session
(a session's newest GET stream ends its older ones, MCP
2025-11-25 "Transports" §Listening for Messages from the Server): the holder opens the
sessions with ``initialize`` + ``notifications/initialized`` through httpx, then opens one
``GET /mcp`` per session on a raw asyncio socket (far lighter than an HTTP client per stream),
checks the ``200 text/event-stream`` answer, and from then on only reads and discards what
the server sends (keep-alive comments, events). Lines on stdout tell the harness where it
is: ``SESSIONS n``, ``OPENED n`` (progress), ``READY open failed``, and on exit
``CLOSED open ended_early``. A principal keeps at most 100 sessions, so the sessions are
spread over the tokens of ``TOKENS_FILE`` (one per line), at most 90 per token. It exits
when its standard input closes or on SIGTERM, and never runs longer than ``--max-seconds``.

``--kind listen``: 2026-07-28 ``subscriptions/listen`` streams (MCP 2026-07-28
"Subscriptions"): no session, one ``POST /mcp`` per stream on a raw socket with the
``MCP-Protocol-Version``/``Mcp-Method`` headers and the ``_meta`` envelope, asking for
``toolsListChanged``; a stream counts as open once its ``200 text/event-stream`` head and the
``notifications/subscriptions/acknowledged`` event arrived. The same lines go to stdout
(``SESSIONS 0`` first).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

import httpx

ACCEPT = "application/json, text/event-stream"
VERSION = "2025-11-25"
LISTEN_VERSION = "2026-07-28"
KINDS = ("get", "listen")
ACKNOWLEDGED = b"notifications/subscriptions/acknowledged"
#: Sessions per token (Charter keeps at most 100 per principal).
PER_TOKEN = 90


async def open_session(client: httpx.AsyncClient, token: str) -> str:
    headers = {"Authorization": f"Bearer {token}", "Accept": ACCEPT}
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": VERSION,
            "capabilities": {},
            "clientInfo": {"name": "charter-bench-streams", "version": "1"},
        },
    }
    response = await client.post("/mcp", json=body, headers=headers)
    session_id = response.headers.get("mcp-session-id")
    if response.status_code != 200 or not session_id:
        raise RuntimeError(f"initialize answered {response.status_code}: {response.text[:200]}")
    headers |= {"Mcp-Session-Id": session_id, "MCP-Protocol-Version": VERSION}
    await client.post(
        "/mcp", json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers
    )
    return session_id


def get_request(host: str, port: int, token: str, session_id: str) -> bytes:
    """The 2025-11-25 ``GET /mcp`` that opens a session's standalone SSE stream."""
    return (
        f"GET /mcp HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n"
        f"Mcp-Session-Id: {session_id}\r\nMCP-Protocol-Version: {VERSION}\r\n\r\n"
    ).encode()


def listen_request(host: str, port: int, token: str, request_id: int) -> bytes:
    """The 2026-07-28 ``subscriptions/listen`` POST (MCP 2026-07-28 "Subscriptions"): the
    routing headers mirror the body, whose ``_meta`` carries the per-request envelope."""
    body = json.dumps(
        {
            "jsonrpc": "2.0",
            "id": request_id,
            "method": "subscriptions/listen",
            "params": {
                "notifications": {"toolsListChanged": True},
                "_meta": {
                    "io.modelcontextprotocol/protocolVersion": LISTEN_VERSION,
                    "io.modelcontextprotocol/clientCapabilities": {},
                    "io.modelcontextprotocol/clientInfo": {
                        "name": "charter-bench-streams",
                        "version": "1",
                    },
                },
            },
        },
        separators=(",", ":"),
    ).encode()
    head = (
        f"POST /mcp HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Authorization: Bearer {token}\r\nAccept: {ACCEPT}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        f"MCP-Protocol-Version: {LISTEN_VERSION}\r\nMcp-Method: subscriptions/listen\r\n\r\n"
    ).encode()
    return head + body


class Holder:
    """The open streams and their counters."""

    def __init__(self, base_url: str, kind: str = "get") -> None:
        parts = urlsplit(base_url)
        self.kind = kind
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.open = 0
        self.failed = 0
        self.ended_early = 0
        self.readers: list[asyncio.Task[None]] = []
        self.stopping = False

    async def open_stream(self, session: tuple[str, str]) -> None:
        """Open one stream: ``session`` is (token, session id) for GET, (token, id) for listen."""
        token, session_id = session
        if self.kind == "listen":
            request = listen_request(self.host, self.port, token, int(session_id))
        else:
            request = get_request(self.host, self.port, token, session_id)
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port), 30
            )
        except (OSError, TimeoutError):
            self.failed += 1
            return
        writer.write(request)
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
            if self.kind == "listen" and b" 200 " in head.split(b"\r\n", 1)[0] + b" ":
                head += await asyncio.wait_for(reader.readuntil(ACKNOWLEDGED), 30)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            self.failed += 1
            writer.close()
            return
        status_line = head.split(b"\r\n", 1)[0]
        if b" 200 " not in status_line + b" " or b"text/event-stream" not in head.lower():
            if self.failed < 3:
                print(f"REFUSED {status_line.decode(errors='replace')}", flush=True)
            self.failed += 1
            writer.close()
            return
        self.open += 1
        self.readers.append(asyncio.create_task(self.drain(reader, writer)))

    async def drain(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await reader.read(65536):
                pass
        except OSError:
            pass
        finally:
            if not self.stopping:
                self.ended_early += 1
                self.open -= 1
            writer.close()


async def bounded(concurrency: int, jobs: Sequence[object], run: object) -> list[object]:
    semaphore = asyncio.Semaphore(concurrency)

    async def one(job: object) -> object:
        async with semaphore:
            return await run(job)  # type: ignore[operator]

    return list(await asyncio.gather(*(one(job) for job in jobs), return_exceptions=True))


async def main_async(
    base_url: str,
    tokens: list[str],
    count: int,
    concurrency: int,
    max_s: float,
    kind: str = "get",
    pause_s: float = 0.0,
) -> None:
    holder = Holder(base_url, kind)
    owners = [tokens[min(len(tokens) - 1, index // PER_TOKEN)] for index in range(count)]
    if kind == "listen":
        await hold(
            holder, [(token, str(i + 1)) for i, token in enumerate(owners)], concurrency, max_s
        )
        return
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as client:
        results = await bounded(concurrency, owners, lambda token: open_session(client, token))
    sessions = [
        (token, item) for token, item in zip(owners, results, strict=True) if isinstance(item, str)
    ]
    errors = [item for item in results if isinstance(item, BaseException)]
    print(
        f"SESSIONS {len(sessions)}"
        + (f" ({len(errors)} failed, first: {errors[0]!r})" if errors else ""),
        flush=True,
    )
    await asyncio.sleep(pause_s)  # lets a harness measure the server with the sessions alone
    await hold(holder, sessions, concurrency, max_s)


async def hold(
    holder: Holder, sessions: list[tuple[str, str]], concurrency: int, max_s: float
) -> None:
    """Open a stream per entry of ``sessions``, keep them until told to stop, then close them."""
    if holder.kind == "listen":
        print("SESSIONS 0", flush=True)
    step = max(1, len(sessions) // 10)
    for start in range(0, len(sessions), step):
        await bounded(concurrency, sessions[start : start + step], holder.open_stream)
        print(f"OPENED {holder.open}", flush=True)
    print(f"READY {holder.open} {holder.failed}", flush=True)

    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, done.set)
    loop.add_reader(sys.stdin.fileno(), lambda: done.set() if not sys.stdin.read(1) else None)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(done.wait(), max_s)
    holder.stopping = True
    print(f"CLOSED {holder.open} {holder.ended_early}", flush=True)
    for task in holder.readers:
        task.cancel()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("base_url")
    parser.add_argument("tokens_file")
    parser.add_argument("count", type=int)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--max-seconds", type=float, default=1800)
    parser.add_argument("--kind", choices=KINDS, default="get")
    parser.add_argument("--pause-after-sessions", type=float, default=0.0)
    args = parser.parse_args()
    count = max(1, min(args.count, 20_000))
    asyncio.run(
        main_async(
            args.base_url,
            Path(args.tokens_file).read_text().split(),
            count,
            args.concurrency,
            args.max_seconds,
            args.kind,
            args.pause_after_sessions,
        )
    )


if __name__ == "__main__":
    main()
