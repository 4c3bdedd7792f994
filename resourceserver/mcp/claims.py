"""One connection per logged stream: claims, takeover and resumption.

MCP 2025-11-25 "Transports" §Streamable HTTP, "Multiple Connections" ("The server MUST send each
of its JSON-RPC messages on only one of the connected streams") and §Resumability and Redelivery
("The server MUST NOT replay messages that would have been delivered on a different stream").

Every message the server sends outside a plain JSON answer is an event in the SQL event log, on
a *logged stream*: the session's standalone stream (all GET streams opened without
``Last-Event-ID``) or one POST's request stream. Several HTTP connections may serve one logged
stream: two GETs of one session, on one worker or on two; a POST's own response and a GET that
resumes it with ``Last-Event-ID``. Each connection that starts serving a logged stream first
appends a **claim** to it (an event with an empty payload, which is also the SSE priming event
the client sees), and from then on the log itself says which connection owns which event:

* An event belongs to the connection whose claim is the newest one before it. A connection
  sends the events it owns and ends, cleanly, at the first claim newer than its own: **the
  newest connection takes over**. The order of rows is the order of commits within a session
  (:meth:`~resourceserver.mcp.events.EventLog.append` serialises a session's appends), so a
  connection that reads a newer claim has already read every event before it, and no event
  after it. Which connection sends an event does not depend on timing.
* A resumption (``Last-Event-ID``) continues a *lineage*: the connection that sent that event
  and every earlier resumption of it. Its claim names the lineage (``resume:<first claim>``);
  the events logged between the client's last event and the new claim are replayed only where
  they belonged to that lineage, never the ones that went out on another connection.
* A POST's handler that closes its SSE stream early (SEP-1699 polling) logs a claim of the
  POST's own lineage, which ends the POST response: the client resumes it with a GET.

Why takeover rather than 409 Conflict for a second GET (as the TypeScript SDK does): a client
whose connection died silently (a load balancer dropped it, a laptop slept) cannot know it is
dead to the server; with 409 it would be locked out, and miss messages, until some lease or TCP
timeout ends the old stream, and across workers the server cannot even tell a live connection
from a dead one. With takeover the client that reconnects is served at once and the stale
connection ends at its next read of the log. Every GET is answered 200 with its priming event
(the MCP conformance suite has counted a 409 to a second GET as a failure). The cost: two *live*
GET streams of one client displace each other, each message still arriving once.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from resourceserver.mcp.events import EventLog, StoredEvent, make_event_id
from resourceserver.storage import McpEvent

#: Payload prefix of a claim that continues an earlier connection's lineage.
RESUME_PREFIX = "resume:"


def claim_payload(lineage: int | None) -> str:
    """The payload of a claim: empty for a new lineage, else the lineage it continues."""
    return "" if lineage is None else f"{RESUME_PREFIX}{lineage}"


def claim_lineage(event: StoredEvent) -> int | None:
    """The lineage a claim continues (its own row for a new one); None if not a claim."""
    if event.final:
        return None
    if event.payload == "":
        return event.row
    if event.payload.startswith(RESUME_PREFIX):
        rest = event.payload.removeprefix(RESUME_PREFIX)
        return int(rest) if rest.isdigit() else None
    return None


class Verdict(enum.Enum):
    """What a connection does with one event of its logged stream."""

    SEND = "send"
    #: Send as an event without data (the connection's own claim: the priming event).
    PRIME = "prime"
    SKIP = "skip"
    #: A newer connection claimed the stream: end this one before this event.
    TAKEN_OVER = "taken over"


@dataclass(slots=True)
class Ownership:
    """Decides, event by event in log order, what one connection sends.

    ``claim`` is the row of this connection's claim; ``lineage`` the lineage it continues;
    ``owned`` whether the events right after the starting point belong to it (True unless the
    starting point is unknown).
    """

    claim: int
    lineage: int
    owned: bool = True

    def see(self, event: StoredEvent) -> Verdict:
        lineage = claim_lineage(event)
        if lineage is None:
            return Verdict.SEND if self.owned else Verdict.SKIP
        if event.row > self.claim:
            return Verdict.TAKEN_OVER
        if event.row == self.claim:
            self.owned = True
            return Verdict.PRIME
        # A claim between the resumed event and ours: who had the stream from there on?
        self.owned = lineage == self.lineage
        return Verdict.SKIP


async def claim(log: EventLog, session_id: str, stream_id: str, lineage: int | None) -> StoredEvent:
    """Log a claim on a stream for a connection about to serve it (see the module docstring)."""
    payload = claim_payload(lineage)
    event_id = await log.append(session_id, stream_id, payload, final=False)
    return StoredEvent(event_id, payload, final=False)


async def resume(log: EventLog, session_id: str, stream_id: str, after: int) -> Ownership | None:
    """Claim a stream for a connection resuming it after row ``after``; None if not resumable.

    A stream is not resumable when it has no events or ``after`` lies beyond its newest event.
    """

    def lineage_at(db: Session) -> tuple[bool, int | None]:
        of_stream = (McpEvent.session_id == session_id, McpEvent.stream_id == stream_id)
        newest = db.scalar(select(func.max(McpEvent.id)).where(*of_stream))
        if newest is None or after > newest:
            return False, None
        found = db.execute(
            select(McpEvent.id, McpEvent.payload)
            .where(
                *of_stream,
                McpEvent.id <= after,
                McpEvent.final.is_(False),
                or_(McpEvent.payload == "", McpEvent.payload.startswith(RESUME_PREFIX)),
            )
            .order_by(McpEvent.id.desc())
            .limit(1)
        ).first()
        if found is None:
            return True, None
        return True, claim_lineage(StoredEvent(make_event_id(stream_id, found[0]), found[1], False))

    known, lineage = await log.db.run(lineage_at)
    if not known:
        return None
    # With no claim left before ``after`` (purged), the resumed connection starts a new lineage
    # and owns only the events up to the next claim.
    own = await claim(log, session_id, stream_id, lineage)
    return Ownership(own.row, own.row if lineage is None else lineage)
