"""Hold N open MCP streams: ``python -m bench._streams BASE_URL TOKENS_FILE N [--kind K]``.

``--kind get`` (the default): 2025-11-25 GET streams. Each stream is its own MCP session
(a session's newest GET stream ends its older ones, MCP
2025-11-25 "Transports" §Listening for Messages from the Server): the holder opens the
sessions with ``initialize`` + ``notifications/initialized`` over keep-alive raw-socket
connections (:class:`RawClient`), then opens one
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

``--fanout``: GET sessions also send ``resources/subscribe`` of ``bench://fanout``. Once
ready, a line ``MARK SECONDS`` on standard input starts a fan-out measurement: the holder
answers ``MARKED``, then notes when each open stream first receives the change
(``notifications/tools/list_changed`` on listen streams, ``notifications/resources/updated``
on GET streams) and prints ``FANOUT received first last`` (``time.time()`` of the first and the
last receipt) once every open stream got it, or after SECONDS.

Streams open in parallel (``--concurrency`` at once, 256 by default): a TCP connect and a
request head each, so opening is bound by the server. The holder raises its soft open-file
limit to the hard one when it needs more (one socket per stream) and says so if it cannot.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

ACCEPT = "application/json, text/event-stream"
VERSION = "2025-11-25"
LISTEN_VERSION = "2026-07-28"
KINDS = ("get", "listen")
ACKNOWLEDGED = b"notifications/subscriptions/acknowledged"
#: Sessions per token (Charter keeps at most 100 per principal).
PER_TOKEN = 90
FANOUT_URI = "bench://fanout"
#: Keep-alive connections the sessions are opened over.
SESSION_CONNECTIONS = 64
#: What a stream receives when the fan-out change reaches it, per kind.
MARKERS = {"get": b"notifications/resources/updated", "listen": b"notifications/tools/list_changed"}
#: File descriptors the holder needs besides one per stream.
SPARE_FDS = 200


def ensure_fds(needed: int) -> None:
    """Raise the soft open-file limit to cover ``needed`` descriptors (up to the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        print(f"NOTE raised the open-file limit from {soft} to {target}", flush=True)
        if target < needed:
            print(
                f"NOTE the hard open-file limit {hard} is below the {needed} descriptors "
                "needed: some streams will fail (raise it with ulimit -Hn)",
                flush=True,
            )


class RawClient:
    """One keep-alive HTTP/1.1 connection on a raw asyncio socket: far less CPU per request
    than httpx (whose pool grew slow with hundreds of connections and made the holder, not the
    server, the bottleneck of opening sessions)."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(
        self, headers: dict[str, str], body: object
    ) -> tuple[int, dict[str, str], bytes]:
        """POST /mcp; (status, lower-cased headers, body). Reconnects when the server closed."""
        payload = json.dumps(body, separators=(",", ":")).encode()
        lines = ["POST /mcp HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        lines += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
        request = ("\r\n".join(lines) + "\r\n\r\n").encode() + payload
        for attempt in range(2):
            if self.writer is None or self.writer.is_closing():
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            assert self.reader is not None
            try:
                self.writer.write(request)
                return await asyncio.wait_for(self._response(self.reader), 60)
            except (OSError, asyncio.IncompleteReadError):
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    async def _response(self, reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(head[0].split()[1])
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            if name:
                headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
                body += (await reader.readexactly(size + 2))[:-2]
            await reader.readuntil(b"\r\n")
        else:
            body = await reader.readexactly(int(headers.get("content-length", "0")))
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, headers, body

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def open_session(client: RawClient, token: str, subscribe: bool = False) -> str:
    """A new 2025-11-25 session: ``initialize``, ``notifications/initialized`` and, for the
    fan-out, ``resources/subscribe`` of the fan-out resource; its id."""
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
    status, answer_headers, text = await client.post(headers, body)
    session_id = answer_headers.get("mcp-session-id")
    if status != 200 or not session_id:
        raise RuntimeError(f"initialize answered {status}: {text[:200]!r}")
    headers |= {"Mcp-Session-Id": session_id, "MCP-Protocol-Version": VERSION}
    await client.post(headers, {"jsonrpc": "2.0", "method": "notifications/initialized"})
    if subscribe:
        body = {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "resources/subscribe",
            "params": {"uri": FANOUT_URI},
        }
        status, _, text = await client.post(headers, body)
        if status != 200 or b'"error"' in text:
            raise RuntimeError(f"resources/subscribe answered {status}: {text[:200]!r}")
    return session_id


async def open_sessions(
    host: str, port: int, owners: list[str], concurrency: int, subscribe: bool
) -> list[str | BaseException]:
    """A session per token of ``owners``, over ``concurrency`` keep-alive connections."""
    results: list[str | BaseException] = [RuntimeError("not opened")] * len(owners)
    jobs = iter(enumerate(owners))

    async def worker() -> None:
        client = RawClient(host, port)
        try:
            for index, token in jobs:
                try:
                    results[index] = await open_session(client, token, subscribe)
                except Exception as exc:
                    results[index] = exc
                    client.close()
        finally:
            client.close()

    await asyncio.gather(*(worker() for _ in range(min(concurrency, len(owners)) or 1)))
    return results


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
        self.marker = MARKERS[kind]
        #: The fan-out measurement: its number (0: none yet) and the receipt times.
        self.epoch = 0
        self.received: list[float] = []
        self.all_received = asyncio.Event()

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

    def mark(self) -> None:
        """Start a fan-out measurement: note each stream's next receipt of the marker."""
        self.epoch += 1
        self.received = []
        self.all_received.clear()

    async def drain(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        marker = self.marker
        seen = 0  # the last measurement this stream has counted itself in
        tail = b""
        try:
            while chunk := await reader.read(65536):
                if seen == self.epoch:
                    continue
                if marker in tail + chunk:
                    seen = self.epoch
                    self.received.append(time.time())
                    if len(self.received) >= self.open:
                        self.all_received.set()
                    tail = b""
                else:
                    tail = chunk[-len(marker) :]
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
    fanout: bool = False,
) -> None:
    holder = Holder(base_url, kind)
    ensure_fds(count + concurrency + SPARE_FDS)
    owners = [tokens[min(len(tokens) - 1, index // PER_TOKEN)] for index in range(count)]
    if kind == "listen":
        await hold(
            holder, [(token, str(i + 1)) for i, token in enumerate(owners)], concurrency, max_s
        )
        return
    results = await open_sessions(
        holder.host, holder.port, owners, min(concurrency, SESSION_CONNECTIONS), fanout
    )
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

    async def progress() -> None:
        while True:
            await asyncio.sleep(2)
            print(f"OPENED {holder.open}", flush=True)

    reporter = asyncio.create_task(progress())
    try:
        for start in range(0, len(sessions), step):
            await bounded(concurrency, sessions[start : start + step], holder.open_stream)
    finally:
        reporter.cancel()
    print(f"OPENED {holder.open}", flush=True)
    print(f"READY {holder.open} {holder.failed}", flush=True)

    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    commands: asyncio.Queue[str] = asyncio.Queue()

    def read_command() -> None:
        line = sys.stdin.readline()
        if not line:
            done.set()
            loop.remove_reader(sys.stdin.fileno())
        else:
            commands.put_nowait(line.strip())

    loop.add_signal_handler(signal.SIGTERM, done.set)
    loop.add_reader(sys.stdin.fileno(), read_command)
    worker = asyncio.create_task(serve_commands(holder, commands))
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(done.wait(), max_s)
    worker.cancel()
    holder.stopping = True
    print(f"CLOSED {holder.open} {holder.ended_early}", flush=True)
    for task in holder.readers:
        task.cancel()


async def serve_commands(holder: Holder, commands: asyncio.Queue[str]) -> None:
    """``MARK SECONDS``: one fan-out measurement (see the module's docstring)."""
    while True:
        words = (await commands.get()).split()
        if words[:1] != ["MARK"]:
            continue
        wait_s = float(words[1]) if len(words) > 1 else 60.0
        holder.mark()
        print("MARKED", flush=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(holder.all_received.wait(), wait_s)
        times = sorted(holder.received)
        first, last = (times[0], times[-1]) if times else (0.0, 0.0)
        print(f"FANOUT {len(times)} {first:.6f} {last:.6f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("base_url")
    parser.add_argument("tokens_file")
    parser.add_argument("count", type=int)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--max-seconds", type=float, default=1800)
    parser.add_argument("--kind", choices=KINDS, default="get")
    parser.add_argument("--pause-after-sessions", type=float, default=0.0)
    parser.add_argument("--fanout", action="store_true")
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
            args.fanout,
        )
    )


if __name__ == "__main__":
    main()
