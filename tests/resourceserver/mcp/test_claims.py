"""Which connection sends which logged event (resourceserver.mcp.claims), event by event, and
where a resumption starts in a real log (SQLite file and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine

from resourceserver.mcp.claims import (
    Ownership,
    Verdict,
    claim,
    claim_lineage,
    claim_payload,
    resume,
)
from resourceserver.mcp.events import Bus, EventLog, StoredEvent, make_event_id
from resourceserver.mcp.sessions import SessionStore
from resourceserver.principal import Principal
from resourceserver.storage import Database, create_tables, metadata
from tests.support.mcp_harness import database


def event(row: int, payload: str = '{"jsonrpc":"2.0"}', final: bool = False) -> StoredEvent:
    return StoredEvent(make_event_id("s", row), payload, final)


def claimed(row: int, lineage: int | None = None) -> StoredEvent:
    return event(row, claim_payload(lineage))


def verdicts(ownership: Ownership, log: list[StoredEvent]) -> list[Verdict]:
    return [ownership.see(e) for e in log]


def test_claims_name_their_lineage() -> None:
    assert claim_lineage(claimed(7)) == 7
    assert claim_lineage(claimed(9, lineage=7)) == 7
    assert claim_lineage(event(8)) is None
    assert claim_lineage(event(8, "", final=True)) is None  # a cancelled request's end
    assert claim_lineage(event(8, "resume:x")) is None


def test_a_connection_sends_until_a_newer_claim() -> None:
    mine = Ownership(claim=5, lineage=5)
    log = [event(6), event(7), claimed(8), event(9)]
    assert verdicts(mine, log[:3]) == [Verdict.SEND, Verdict.SEND, Verdict.TAKEN_OVER]


def test_a_claim_of_the_own_lineage_also_takes_over() -> None:
    post = Ownership(claim=5, lineage=5)
    assert post.see(claimed(6, lineage=5)) is Verdict.TAKEN_OVER


def test_resumption_replays_only_its_lineage() -> None:
    # 5: first GET; 6 its event; 8: a second GET; 9 its event; 10: the first GET resumed
    # after 6; 11: the second's client resumed (lineage 8) -> the resumption of lineage 5 ends.
    resumed = Ownership(claim=10, lineage=5)
    log = [event(7), claimed(8), event(9), claimed(10), event(12)]
    assert verdicts(resumed, log) == [
        Verdict.SEND,
        Verdict.SKIP,
        Verdict.SKIP,
        Verdict.PRIME,
        Verdict.SEND,
    ]
    assert resumed.see(claimed(11, lineage=8)) is Verdict.TAKEN_OVER


def test_resumption_after_an_early_close_gets_the_rest() -> None:
    # 5: POST priming; 6 an event; 7: the handler closed the stream (a claim of lineage 5);
    # 8 an event logged after the close; 9: the GET resuming after 6.
    resumed = Ownership(claim=9, lineage=5)
    log = [claimed(7, lineage=5), event(8), claimed(9), event(10, final=True)]
    assert verdicts(resumed, log) == [Verdict.SKIP, Verdict.SEND, Verdict.PRIME, Verdict.SEND]


def test_events_of_another_connection_stay_skipped_until_the_own_lineage_returns() -> None:
    resumed = Ownership(claim=20, lineage=5)
    log = [claimed(8), event(9), claimed(12, lineage=5), event(13), claimed(15), event(16)]
    assert verdicts(resumed, log) == [
        Verdict.SKIP,
        Verdict.SKIP,
        Verdict.SKIP,
        Verdict.SEND,
        Verdict.SKIP,
        Verdict.SKIP,
    ]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        sqlite = database(tmp_path / "rs.db")
        yield sqlite
        sqlite.dispose()
        return
    postgres = create_engine(request.getfixturevalue("postgres_resource_url"))
    metadata.drop_all(postgres)
    create_tables(postgres)
    yield postgres
    metadata.drop_all(postgres)
    postgres.dispose()


async def new_session(db: Database) -> str:
    principal = Principal("alice", "c1", frozenset({"mcp"}), token_id="t", expires_at=2**40)
    return (await SessionStore(db, 3600).create(principal, "2025-11-25", {}, {})).id


async def test_resumption_continues_the_lineage_of_the_last_event(engine: Engine) -> None:
    db = Database(engine)
    log = EventLog(db, Bus())
    session = await new_session(db)
    first = await claim(log, session, "standalone", None)
    one = StoredEvent(await log.append(session, "standalone", "{}", final=False), "{}", False)
    second = await claim(log, session, "standalone", None)
    two = await log.append(session, "standalone", "{}", final=False)

    resumed = await resume(log, session, "standalone", one.row)
    assert resumed is not None
    assert resumed.lineage == first.row and resumed.claim > second.row
    window = await log.after(session, "standalone", one.row)
    assert [e.event_id for e in window][1] == two
    assert [resumed.see(e) for e in window] == [Verdict.SKIP, Verdict.SKIP, Verdict.PRIME]
    assert claim_lineage(window[-1]) == first.row

    assert await resume(log, session, "standalone", resumed.claim + 1) is None
    assert await resume(log, session, "no-such-stream", 0) is None


async def test_resumption_whose_claim_is_gone_starts_a_new_lineage(engine: Engine) -> None:
    db = Database(engine)
    log = EventLog(db, Bus())
    session = await new_session(db)
    # The stream's claim before this event was purged long ago.
    one = StoredEvent(await log.append(session, "standalone", "{}", final=False), "{}", False)
    await claim(log, session, "standalone", None)
    await log.append(session, "standalone", "{}", final=False)

    resumed = await resume(log, session, "standalone", one.row)
    assert resumed is not None and resumed.lineage == resumed.claim
    window = await log.after(session, "standalone", one.row)
    assert [resumed.see(e) for e in window] == [Verdict.SKIP, Verdict.SKIP, Verdict.PRIME]
    assert claim_lineage(window[-1]) == resumed.claim
