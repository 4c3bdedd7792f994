"""The console's clients (RFC 7591 §3.2.1 metadata; RFC 7592 §2 management from the admin's
side): list, show, disable/enable, remove, rotate a confidential client's secret — the same
changes as ``charter clients`` (:mod:`authserver.cli.clients`), with the same revocations
(:func:`authserver.storage.revocation.revoke_client_grants`) and audit events."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from authserver.console.actions import Action, ActionRequest, Done, Refused, Secret, audit
from authserver.context import AuthServer
from authserver.storage.crypto import hash_token, new_token
from authserver.storage.models import Client, Consent
from authserver.storage.revocation import revoke_client_grants

PAGE = "/clients"
SHOW_PAGE = "/client"


def clients_page(server: AuthServer, session: Session, _query: Mapping[str, str]) -> dict[str, Any]:
    """Every client, newest first."""
    from authserver.cli.clients import KIND_LABELS, client_record  # the CLI's, on first page

    rows = session.scalars(select(Client).order_by(Client.created_at.desc(), Client.client_id))
    return {"clients": [client_record(row) for row in rows], "kinds": KIND_LABELS}


def client_page(server: AuthServer, session: Session, query: Mapping[str, str]) -> dict[str, Any]:
    """One client with its metadata (never a secret or hash)."""
    from authserver.cli.clients import KIND_LABELS, client_record

    client = _client(session, query.get("client_id", ""))
    record = client_record(client)
    record["metadata"] = dict(client.client_metadata or {})
    return {"client": record, "kinds": KIND_LABELS}


def _client(session: Session, client_id: str) -> Client:
    client = session.get(Client, client_id) if client_id else None
    if client is None:
        raise Refused(404, "There is no such client.")
    return client


def _ask_disable(_server: AuthServer, session: Session, request: ActionRequest) -> str:
    client = _client(session, request.target)
    return f"Disable client {client.client_name or client.client_id} and revoke all its tokens?"


def _ask_enable(_server: AuthServer, session: Session, request: ActionRequest) -> str:
    client = _client(session, request.target)
    return f"Enable client {client.client_name or client.client_id} again?"


def _ask_remove(_server: AuthServer, session: Session, request: ActionRequest) -> str:
    client = _client(session, request.target)
    name = client.client_name or client.client_id
    return f"Remove client {name}, its consents, and revoke all its tokens?"


def _ask_rotate(_server: AuthServer, session: Session, request: ActionRequest) -> str:
    client = _client(session, request.target)
    if client.secret_hash is None:
        raise Refused(409, "This client is public and has no secret.")
    name = client.client_name or client.client_id
    return f"Replace the secret of client {name}? The old secret stops working at once."


def _set_disabled(server: AuthServer, request: ActionRequest, disabled: bool) -> Done:
    with server.database.transaction() as session:
        client = _client(session, request.target)
        client.disabled = disabled
        client.updated_at = request.now
        revoked = 0
        if disabled:
            revoked = revoke_client_grants(
                session, client.client_id, now=request.now, reason="client_disabled"
            )
        event = "client_disabled" if disabled else "client_enabled"
        audit(session, request, event, client_id=client.client_id, revoked_grants=revoked)
    if disabled:
        return Done(f"Client disabled; {revoked} grant(s) and its tokens revoked.")
    return Done("Client enabled.")


def _disable(server: AuthServer, request: ActionRequest) -> Done:
    return _set_disabled(server, request, True)


def _enable(server: AuthServer, request: ActionRequest) -> Done:
    return _set_disabled(server, request, False)


def _remove(server: AuthServer, request: ActionRequest) -> Done:
    with server.database.transaction() as session:
        client_id = _client(session, request.target).client_id
        revoked = revoke_client_grants(session, client_id, now=request.now, reason="client_removed")
        session.execute(delete(Consent).where(Consent.client_id == client_id))
        session.execute(delete(Client).where(Client.client_id == client_id))
        audit(session, request, "client_removed", client_id=client_id, revoked_grants=revoked)
    return Done(f"Client removed; {revoked} grant(s) revoked.")


def _rotate(server: AuthServer, request: ActionRequest) -> Done:
    secret = new_token()
    with server.database.transaction() as session:
        client = _client(session, request.target)
        if client.secret_hash is None:
            raise Refused(409, "This client is public and has no secret.")
        client.secret_hash = hash_token(secret)
        client.secret_expires_at = 0
        client.updated_at = request.now
        audit(session, request, "client_secret_rotated", client_id=client.client_id)
    about = "Give it to the client's operator now: it is shown only this once."
    return Done("Client secret replaced.", Secret("New client secret", secret, about))


ACTIONS = (
    Action(
        "client-disable", PAGE, _ask_disable, _disable, "Client disabled; its tokens were revoked."
    ),
    Action("client-enable", PAGE, _ask_enable, _enable, "Client enabled."),
    Action("client-remove", PAGE, _ask_remove, _remove, "Client removed; its tokens were revoked."),
    Action("client-rotate-secret", PAGE, _ask_rotate, _rotate, "Client secret replaced."),
)
