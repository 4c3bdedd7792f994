"""Which connection sends which logged event (resourceserver.mcp.claims), event by event."""

from __future__ import annotations

from resourceserver.mcp.claims import Ownership, Verdict, claim_lineage, claim_payload
from resourceserver.mcp.events import StoredEvent, make_event_id


def event(row: int, payload: str = '{"jsonrpc":"2.0"}', final: bool = False) -> StoredEvent:
    return StoredEvent(make_event_id("s", row), payload, final)


def claim(row: int, lineage: int | None = None) -> StoredEvent:
    return event(row, claim_payload(lineage))


def verdicts(ownership: Ownership, log: list[StoredEvent]) -> list[Verdict]:
    return [ownership.see(e) for e in log]


def test_claims_name_their_lineage() -> None:
    assert claim_lineage(claim(7)) == 7
    assert claim_lineage(claim(9, lineage=7)) == 7
    assert claim_lineage(event(8)) is None
    assert claim_lineage(event(8, "", final=True)) is None  # a cancelled request's end
    assert claim_lineage(event(8, "resume:x")) is None


def test_a_connection_sends_until_a_newer_claim() -> None:
    mine = Ownership(claim=5, lineage=5)
    log = [event(6), event(7), claim(8), event(9)]
    assert verdicts(mine, log[:3]) == [Verdict.SEND, Verdict.SEND, Verdict.TAKEN_OVER]


def test_a_claim_of_the_own_lineage_also_takes_over() -> None:
    post = Ownership(claim=5, lineage=5)
    assert post.see(claim(6, lineage=5)) is Verdict.TAKEN_OVER


def test_resumption_replays_only_its_lineage() -> None:
    # 5: first GET; 6 its event; 8: a second GET; 9 its event; 10: the first GET resumed
    # after 6; 11: the second's client resumed (lineage 8) -> the resumption of lineage 5 ends.
    resumed = Ownership(claim=10, lineage=5)
    log = [event(7), claim(8), event(9), claim(10), event(12)]
    assert verdicts(resumed, log) == [
        Verdict.SEND,
        Verdict.SKIP,
        Verdict.SKIP,
        Verdict.PRIME,
        Verdict.SEND,
    ]
    assert resumed.see(claim(11, lineage=8)) is Verdict.TAKEN_OVER


def test_resumption_after_an_early_close_gets_the_rest() -> None:
    # 5: POST priming; 6 an event; 7: the handler closed the stream (a claim of lineage 5);
    # 8 an event logged after the close; 9: the GET resuming after 6.
    resumed = Ownership(claim=9, lineage=5)
    log = [claim(7, lineage=5), event(8), claim(9), event(10, final=True)]
    assert verdicts(resumed, log) == [Verdict.SKIP, Verdict.SEND, Verdict.PRIME, Verdict.SEND]


def test_events_of_another_connection_stay_skipped_until_the_own_lineage_returns() -> None:
    resumed = Ownership(claim=20, lineage=5)
    log = [claim(8), event(9), claim(12, lineage=5), event(13), claim(15), event(16)]
    assert verdicts(resumed, log) == [
        Verdict.SKIP,
        Verdict.SKIP,
        Verdict.SKIP,
        Verdict.SEND,
        Verdict.SKIP,
        Verdict.SKIP,
    ]
