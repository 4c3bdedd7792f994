"""Per-user notes stored in the deployment's database (table ``rs_notes``, keyed by subject).

Text arguments hold no NUL character (S102): PostgreSQL cannot store one, and a tool's arguments
must be refused as invalid alike on every database, before any SQL.
"""

from __future__ import annotations

import time
from typing import Annotated

from pydantic import BaseModel, Field
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from resourceserver.mcp.context import Context, ToolError
from resourceserver.mcp.registry import Registry
from resourceserver.storage import Database, Note

MAX_TITLE = 200
MAX_BODY = 10_000
MAX_NOTES = 500
#: Any text without a NUL (U+0000).
NO_NUL = r"^[^\x00]*$"


class NoteSummary(BaseModel):
    """A note without its body."""

    id: int
    title: str
    created_at: int


class NoteView(NoteSummary):
    """A whole note."""

    body: str


class NotesPage(BaseModel):
    """Some of your notes, newest first."""

    notes: list[NoteSummary]
    total: int


class Deleted(BaseModel):
    """The outcome of a deletion."""

    deleted: int


def _view(note: Note) -> NoteView:
    return NoteView(id=note.id, title=note.title, body=note.body, created_at=int(note.created_at))


def _own(db: Session, subject: str, note_id: int) -> Note:
    note = db.get(Note, note_id)
    if note is None or note.subject != subject:
        raise ToolError(f"You have no note with id {note_id}; call notes_list to see your notes.")
    return note


def register(registry: Registry, engine: Engine) -> None:
    """Add ``notes_list``, ``notes_read``, ``notes_add`` and ``notes_delete`` to ``registry``."""
    database = Database(engine)

    @registry.tool(scopes={"notes:read"}, annotations={"readOnlyHint": True})
    async def notes_list(
        ctx: Context,
        limit: Annotated[int, Field(ge=1, le=100, description="How many notes to return.")] = 20,
        offset: Annotated[int, Field(ge=0, description="How many newest notes to skip.")] = 0,
    ) -> NotesPage:
        """List your notes, newest first (ids and titles; read one with notes_read)."""
        subject = ctx.principal.subject

        def work(db: Session) -> NotesPage:
            total = db.scalar(select(func.count()).where(Note.subject == subject)) or 0
            rows = db.scalars(
                select(Note)
                .where(Note.subject == subject)
                .order_by(Note.id.desc())
                .limit(limit)
                .offset(offset)
            )
            notes = [
                NoteSummary(id=n.id, title=n.title, created_at=int(n.created_at)) for n in rows
            ]
            return NotesPage(notes=notes, total=total)

        return await database.run(work)

    @registry.tool(scopes={"notes:read"}, annotations={"readOnlyHint": True})
    async def notes_read(
        ctx: Context, note_id: Annotated[int, Field(description="The id notes_list shows.")]
    ) -> NoteView:
        """Read one of your notes in full."""
        subject = ctx.principal.subject
        return await database.run(lambda db: _view(_own(db, subject, note_id)))

    @registry.tool(scopes={"notes:write"}, annotations={"destructiveHint": False})
    async def notes_add(
        ctx: Context,
        title: Annotated[
            str,
            Field(min_length=1, max_length=MAX_TITLE, pattern=NO_NUL, description="A short title."),
        ],
        body: Annotated[
            str, Field(max_length=MAX_BODY, pattern=NO_NUL, description="The note's text.")
        ] = "",
    ) -> NoteView:
        """Save a new note (title up to 200 characters, body up to 10,000)."""
        subject = ctx.principal.subject

        def work(db: Session) -> NoteView:
            count = db.scalar(select(func.count()).where(Note.subject == subject)) or 0
            if count >= MAX_NOTES:
                raise ToolError(
                    f"You already have {MAX_NOTES} notes, the most allowed; "
                    "delete some with notes_delete first."
                )
            note = Note(subject=subject, title=title.strip(), body=body, created_at=time.time())
            db.add(note)
            db.flush()
            return _view(note)

        return await database.run(work)

    @registry.tool(scopes={"notes:write"}, annotations={"destructiveHint": True})
    async def notes_delete(
        ctx: Context, note_id: Annotated[int, Field(description="The id notes_list shows.")]
    ) -> Deleted:
        """Delete one of your notes for good."""
        subject = ctx.principal.subject

        def work(db: Session) -> Deleted:
            db.delete(_own(db, subject, note_id))
            return Deleted(deleted=note_id)

        return await database.run(work)
