"""``charter audit list``: the trail, oldest first, filtered by time, event, user and client,
as a table or JSON; ``--since`` takes durations and dates."""

from __future__ import annotations

import json
import queue
import subprocess
import threading
from pathlib import Path

import pytest

from authserver.context import AuthServer
from authserver.storage.audit import record_event
from authserver.storage.audit_query import parse_since
from tests.support.charter_process import CHARTER, charter_env
from tests.support.cli_runner import Charter
from tests.support.factories import create_user


def add_events(server: AuthServer, subject: str) -> None:
    now = server.now()
    with server.database.transaction() as session:
        record_event(session, "client_registered", at=now - 7200, client_id="c1", ip="10.0.0.1")
        record_event(session, "login_failed", at=now - 60, subject=subject, ip="10.0.0.2")
        record_event(session, "token_issued", at=now - 30, client_id="c1", subject=subject)
        record_event(session, "token_issued", at=now - 10, client_id="c2", subject="gone-user")


def test_audit_list_filters_and_prints_json(cli: Charter, server: AuthServer) -> None:
    alice = create_user(server, "alice")
    add_events(server, alice.id)
    everything = json.loads(cli("audit", "list", "--json").stdout)
    assert [entry["event"] for entry in everything] == [
        "client_registered",
        "login_failed",
        "token_issued",
        "token_issued",
    ]
    assert everything[1]["user"] == "alice"
    assert everything[1]["ip"] == "10.0.0.2"
    assert everything[0]["time"].endswith("Z")

    def events(*options: str) -> list[tuple[str, str | None]]:
        result = cli("audit", "list", "--json", *options)
        assert result.exit_code == 0, result.output
        return [(entry["event"], entry["client_id"]) for entry in json.loads(result.stdout)]

    assert events("--since", "1h") == [
        ("login_failed", None),
        ("token_issued", "c1"),
        ("token_issued", "c2"),
    ]
    assert events("--event", "token_issued", "--client", "c1") == [("token_issued", "c1")]
    assert events("--user", "ALICE") == [("login_failed", None), ("token_issued", "c1")]
    assert events("--user", "gone-user") == [("token_issued", "c2")]  # by id once removed
    assert events("--event", "login_failed,client_registered") == [
        ("client_registered", "c1"),
        ("login_failed", None),
    ]
    assert events("--limit", "1") == [("token_issued", "c2")]


def test_audit_list_table_and_errors(cli: Charter, server: AuthServer) -> None:
    assert "no audit events" in cli("audit", "list").stderr
    add_events(server, create_user(server, "alice").id)
    table = cli("audit", "list").stdout.splitlines()
    assert table[0].split() == ["TIME", "EVENT", "USER", "CLIENT", "IP", "REQUEST", "DETAIL"]
    assert len(table) == 5
    bad = cli("audit", "list", "--since", "yesterday")
    assert bad.exit_code == 2
    assert "30m, 2h, 7d" in bad.output


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("90s", 1000 - 90),
        ("15m", 1000 - 900),
        ("1h30m", 10_000 - 5400),
        ("2026-12-01T08:00:00", 1796112000),
        ("2026-12-01T09:00:00+01:00", 1796112000),
    ],
)
def test_parse_since(value: str, expected: int) -> None:
    now = 10_000 if "h" in value else 1000
    assert parse_since(value, now) == expected


def test_audit_tail_prints_the_last_events_then_new_ones(
    cli: Charter, server: AuthServer, tmp_path: Path
) -> None:
    add_events(server, create_user(server, "alice").id)
    command = [
        *CHARTER,
        "--data-dir",
        str(cli.data_dir),
        "--database-url",
        cli.database_url,
        "audit",
        "tail",
        "--json",
        "--lines",
        "1",
        "--interval",
        "0.2",
    ]
    with (tmp_path / "tail.stderr").open("w") as errors:
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=errors, text=True, env=charter_env()
        )
    lines: queue.Queue[str] = queue.Queue()
    assert process.stdout is not None
    reader = threading.Thread(target=lambda: [lines.put(line) for line in process.stdout or []])
    reader.start()
    try:
        try:
            first = json.loads(lines.get(timeout=20))
        except queue.Empty:
            raise AssertionError((tmp_path / "tail.stderr").read_text()) from None
        assert (first["event"], first["client_id"]) == ("token_issued", "c2")
        with server.database.transaction() as session:
            record_event(session, "admin_revoked", at=server.now(), target="x")
        second = json.loads(lines.get(timeout=60))
        assert second["event"] == "admin_revoked"
        assert second["detail"] == {"target": "x"}
        assert lines.empty()
    finally:
        process.terminate()
        process.wait(timeout=30)
        reader.join(timeout=10)
        process.stdout.close()
