"""What one console action is (S93): a named change to one target, the question its
confirmation page asks, and the work, audited with the admin as actor.

Actions never run on a GET. The console's form handler (:mod:`authserver.console.routes`)
checks the CSRF token, then shows :meth:`Action.question` until the form comes back with
``confirm=yes``, and only then calls :meth:`Action.run`. A target that does not exist, or a
change that is not allowed, raises :class:`Refused` (nothing changed).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from authserver.browser.signed_in import SignedIn
from authserver.context import AuthServer
from authserver.storage.audit import record_event

#: ``via`` of every audit row the console writes.
VIA = "console"


class Refused(Exception):
    """The action cannot be done; ``status`` is the page's HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class ActionRequest:
    """One posted action: who asks, on what, with which options, at what time."""

    admin: SignedIn
    target: str
    options: Mapping[str, str]
    now: int


@dataclass(frozen=True)
class Secret:
    """A value shown once after the action (a new client secret or one-time password)."""

    label: str
    value: str
    about: str


@dataclass(frozen=True)
class Done:
    """What the action did: what the page showing a secret says, and the secret to show once
    (without one, the browser goes back to the action's page, which shows :attr:`Action.done`)."""

    notice: str
    secret: Secret | None = None


#: Asks the confirmation page's question (raises :class:`Refused` for a missing target).
Question = Callable[[AuthServer, Session, ActionRequest], str]


@dataclass(frozen=True)
class Action:
    """A console action: its form name, the page it belongs to, its question and its work."""

    name: str
    #: The console page (path under ``/admin``) the action's forms are on and lead back to.
    page: str
    question: Question
    run: Callable[[AuthServer, ActionRequest], Done]
    #: The notice of the page the browser goes back to (a fixed text: nothing posted in it).
    done: str
    #: Form fields passed on besides ``target`` (their values are also confirmed).
    options: tuple[str, ...] = field(default=())


def audit(session: Session, request: ActionRequest, event: str, **values: Any) -> None:
    """Record ``event`` with the admin as actor (in the caller's transaction)."""
    record_event(
        session,
        event,
        at=request.now,
        actor=request.admin.user_id,
        actor_username=request.admin.username,
        via=VIA,
        **values,
    )
