"""``charter clients``: registered OAuth clients (dynamic, metadata documents, static).

Static clients are made here; their redirect URIs follow the same rules as dynamic registration
(:func:`authserver.clients.redirect_uris.validate_redirect_uri`). A confidential client's secret is
printed once and stored only as a hash (S56).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click
from sqlalchemy import delete, select

from authserver.accounts.users import names_a_user
from authserver.cli.context import open_server
from authserver.cli.lookups import find_client
from authserver.cli.output import (
    Column,
    confirm,
    emit_record,
    emit_records,
    emit_result,
    fail,
    json_option,
    time_column,
    usage_error,
    yes_option,
)
from authserver.clients.metadata import (
    PUBLIC_AUTH_METHOD,
    ClientMetadata,
    new_client,
)
from authserver.clients.redirect_uris import validate_redirect_uri
from authserver.context import AuthServer
from authserver.errors import OAuthError
from authserver.oauth.grants.registry import (
    GrantTypeError,
    check_grant_types,
    needs_redirect_uri,
    registered_grant_types,
    response_types_for,
)
from authserver.storage.audit import record_event
from authserver.storage.crypto import hash_token, new_id, new_token
from authserver.storage.models import Client, ClientKind, Consent
from authserver.storage.revocation import revoke_client_grants

KIND_LABELS = {
    "dynamic": "dynamic",
    "metadata_document": "metadata document",
    "static": "static",
}
CONFIDENTIAL_METHOD = "client_secret_basic"
#: What ``clients add`` registers without ``--grant-type``.
DEFAULT_GRANT_TYPES = ("authorization_code", "refresh_token")
#: How to satisfy what a grant type is missing (:class:`GrantTypeError`), as options.
OPTION_HINTS = {"confidential": "add --confidential"}
CLIENT_COLUMNS = (
    Column("CLIENT ID", "client_id"),
    Column("NAME", "client_name"),
    Column("KIND", "kind", lambda kind: KIND_LABELS.get(str(kind), str(kind))),
    Column("REDIRECT URIS", "redirect_uris"),
    time_column("CREATED", "created_at"),
    time_column("LAST USED", "last_used_at"),
    Column("STATUS", "status"),
)
SHOW_TIMES = ("created_at", "updated_at", "last_used_at", "expires_at", "secret_expires_at")


def client_record(client: Client) -> dict[str, Any]:
    """A client as shown by the CLI: metadata and state, never a secret or hash."""
    return {
        "client_id": client.client_id,
        "client_name": client.client_name,
        "kind": client.kind,
        "status": "disabled" if client.disabled else "enabled",
        "redirect_uris": list(client.redirect_uris or []),
        "grant_types": list(client.grant_types or []),
        "token_endpoint_auth_method": client.token_endpoint_auth_method,
        "confidential": client.secret_hash is not None,
        "scope": client.scope,
        "created_at": client.created_at,
        "updated_at": client.updated_at,
        "last_used_at": client.last_used_at,
        "expires_at": client.expires_at,
        "registered_from": client.registered_from,
    }


def checked_redirect_uris(uris: Sequence[str]) -> list[str]:
    """``uris`` when every one is acceptable; exit 2 naming the bad one otherwise."""
    checked = []
    for uri in uris:
        try:
            checked.append(validate_redirect_uri(uri))
        except OAuthError as exc:
            usage_error(f"--redirect-uri {uri!r}: {exc.description}")
    return checked


def checked_scope(server: AuthServer, scope: str) -> str:
    """``scope`` normalised, when every scope is one the deployment supports (else exit 2)."""
    scopes = scope.split()
    unknown = sorted(set(scopes) - set(server.settings.scopes_supported))
    if unknown:
        supported = " ".join(server.settings.scopes_supported)
        usage_error(f"unknown scope(s) {' '.join(unknown)}; supported: {supported}")
    return " ".join(dict.fromkeys(scopes))


def checked_grant_types(
    grant_types: Sequence[str], *, confidential: bool, redirect_uris: Sequence[str]
) -> list[str]:
    """The grant types after the consistency rules of RFC 7591 §2.1 (else exit 2)."""
    chosen = list(dict.fromkeys(grant_types)) or list(DEFAULT_GRANT_TYPES)
    try:
        check_grant_types(chosen, confidential=confidential, administrator=True)
    except GrantTypeError as exc:
        hint = OPTION_HINTS.get(exc.missing, f"add --grant-type {exc.missing}")
        usage_error(f"--grant-type: {exc} ({hint})")
    if needs_redirect_uri(chosen) and not redirect_uris:
        usage_error("the authorization_code grant needs at least one --redirect-uri")
    return chosen


@click.group()
def clients() -> None:
    """OAuth clients."""


@clients.command("list")
@click.option(
    "--kind",
    type=click.Choice(sorted(KIND_LABELS)),
    help="Only clients of this kind.",
)
@json_option
def list_clients(kind: str | None, as_json: bool) -> None:
    """Every client, newest first."""
    server = open_server()
    with server.database.transaction() as session:
        query = select(Client).order_by(Client.created_at.desc(), Client.client_id)
        if kind:
            query = query.where(Client.kind == kind)
        records = [client_record(client) for client in session.scalars(query)]
    emit_records(
        records,
        CLIENT_COLUMNS,
        as_json=as_json,
        empty="no clients; add one with `charter clients add NAME --redirect-uri URI`",
    )


@clients.command("show")
@click.argument("client_id")
@json_option
def show_client(client_id: str, as_json: bool) -> None:
    """Everything about CLIENT_ID except secrets."""
    server = open_server()
    with server.database.transaction() as session:
        client = find_client(session, client_id)
        record = client_record(client)
        record["metadata"] = dict(client.client_metadata or {})
    emit_record(record, as_json=as_json, times=SHOW_TIMES)


@clients.command("add")
@click.argument("name")
@click.option(
    "--redirect-uri",
    "redirect_uris",
    multiple=True,
    metavar="URI",
    help="Where codes may be sent (repeat for several).",
)
@click.option(
    "--confidential",
    is_flag=True,
    help="Give the client a secret (printed once), client_secret_basic.",
)
@click.option("--scope", default="", help="Scopes it may ask for, space-separated (default all).")
@click.option(
    "--grant-type",
    "grant_types",
    multiple=True,
    type=click.Choice(registered_grant_types()),
    help="Repeatable; default authorization_code and refresh_token.",
)
@click.option(
    "--client-id", "wanted_id", metavar="ID", help="Choose the client id (default random)."
)
@json_option
def add_client(
    name: str,
    redirect_uris: tuple[str, ...],
    confidential: bool,
    scope: str,
    grant_types: tuple[str, ...],
    wanted_id: str | None,
    as_json: bool,
) -> None:
    """Create a static client called NAME."""
    if not name.strip() or len(name) > 256:
        usage_error("NAME must be 1-256 characters")
    uris = checked_redirect_uris(redirect_uris)
    chosen_grants = checked_grant_types(grant_types, confidential=confidential, redirect_uris=uris)
    checked_client_id(wanted_id)
    server = open_server()
    metadata = ClientMetadata(
        redirect_uris=tuple(uris),
        grant_types=tuple(chosen_grants),
        response_types=response_types_for(chosen_grants),
        token_endpoint_auth_method=CONFIDENTIAL_METHOD if confidential else PUBLIC_AUTH_METHOD,
        scope=checked_scope(server, scope),
        client_name=name,
    )
    client_id = wanted_id or new_id()
    secret = new_token() if confidential else None
    _create_static_client(server, client_id, metadata, secret)
    record: dict[str, Any] = {"client_id": client_id, **metadata.to_dict()}
    message = f"created client {name}\nclient_id:     {client_id}"
    if secret:
        record["client_secret"] = secret
        message += f"\nclient_secret: {secret}\n(the secret is shown only now; store it safely)"
    emit_result(message, record, as_json=as_json)


def checked_client_id(wanted_id: str | None) -> None:
    """Exit 2 unless ``wanted_id`` (when given) is 1-255 characters and not a URL."""
    if wanted_id is not None and (not wanted_id or len(wanted_id) > 255 or wanted_id.isspace()):
        usage_error("--client-id must be 1-255 characters")
    if wanted_id and wanted_id.lower().startswith(("http://", "https://")):
        usage_error("--client-id must not be a URL (URLs name client ID metadata documents)")


def _create_static_client(
    server: AuthServer, client_id: str, metadata: ClientMetadata, secret: str | None
) -> None:
    """Store the client (audited); exit 1 when its id names a client or a user (S22)."""
    now = server.now()
    with server.database.transaction() as session:
        if session.get(Client, client_id) is not None:
            fail(f"client {client_id!r} already exists", "pick another --client-id")
        if names_a_user(session, client_id):  # S22
            fail(f"client id {client_id!r} collides with a user", "pick another --client-id")
        secret_hash = hash_token(secret) if secret else None
        session.add(
            new_client(client_id, ClientKind.STATIC, metadata, now=now, secret_hash=secret_hash)
        )
        record_event(session, "client_created", at=now, client_id=client_id, actor="cli")


@clients.command("update")
@click.argument("client_id")
@click.option("--name", help="New display name.")
@click.option(
    "--redirect-uri",
    "redirect_uris",
    multiple=True,
    metavar="URI",
    help="Replace the redirect URIs (repeat for several).",
)
@click.option("--scope", help="Replace the allowed scopes ('' = all).")
@json_option
def update_client(
    client_id: str,
    name: str | None,
    redirect_uris: tuple[str, ...],
    scope: str | None,
    as_json: bool,
) -> None:
    """Change a client's name, redirect URIs or scopes."""
    if name is None and not redirect_uris and scope is None:
        usage_error("nothing to change: give --name, --redirect-uri or --scope")
    uris = checked_redirect_uris(redirect_uris) if redirect_uris else None
    server = open_server()
    new_scope = checked_scope(server, scope) if scope is not None else None
    now = server.now()
    with server.database.transaction() as session:
        client = find_client(session, client_id)
        if client.kind == ClientKind.METADATA_DOCUMENT and uris is not None:
            fail("a metadata document client's redirect URIs come from its document")
        _change(client, name, uris, new_scope)
        client.updated_at = now
        record = client_record(client)
        record_event(session, "client_updated", at=now, client_id=client_id, actor="cli")
    emit_result(f"updated client {client_id}", record, as_json=as_json)


def _change(client: Client, name: str | None, uris: list[str] | None, scope: str | None) -> None:
    """Set what was given on the row and in its stored metadata (``scope=''`` means all)."""
    metadata = dict(client.client_metadata or {})
    if name is not None:
        client.client_name = name
        metadata["client_name"] = name
    if uris is not None:
        client.redirect_uris = uris
        metadata["redirect_uris"] = uris
    if scope is not None:
        client.scope = scope
        if scope:
            metadata["scope"] = scope
        else:
            metadata.pop("scope", None)
    client.client_metadata = metadata


def existing_client_server(client_id: str, *, needs_secret: bool = False) -> AuthServer:
    """A context, after checking that ``client_id`` exists (and has a secret): exit 1 if not."""
    server = open_server()
    with server.database.transaction() as session:
        client = find_client(session, client_id)
        if needs_secret and client.secret_hash is None:
            fail(f"client {client_id!r} is public and has no secret")
    return server


def _set_disabled(server: AuthServer, client_id: str, disabled: bool, as_json: bool) -> None:
    now = server.now()
    revoked = 0
    with server.database.transaction() as session:
        client = find_client(session, client_id)
        client.disabled = disabled
        client.updated_at = now
        if disabled:
            revoked = revoke_client_grants(session, client_id, now=now, reason="client_disabled")
        event = "client_disabled" if disabled else "client_enabled"
        record_event(session, event, at=now, client_id=client_id, actor="cli")
    state = "disabled" if disabled else "enabled"
    message = f"{state} client {client_id}"
    if disabled:
        message += f"; revoked {revoked} grant(s) and its access tokens"
    emit_result(message, {"client_id": client_id, "status": state}, as_json=as_json)


@clients.command("disable")
@click.argument("client_id")
@yes_option
@json_option
def disable_client(client_id: str, yes: bool, as_json: bool) -> None:
    """Refuse CLIENT_ID from now on and revoke its tokens."""
    server = existing_client_server(client_id)
    confirm(f"disable client {client_id} and revoke its tokens", yes=yes)
    _set_disabled(server, client_id, True, as_json)


@clients.command("enable")
@click.argument("client_id")
@json_option
def enable_client(client_id: str, as_json: bool) -> None:
    """Accept CLIENT_ID again."""
    _set_disabled(open_server(), client_id, False, as_json)


@clients.command("remove")
@click.argument("client_id")
@yes_option
@json_option
def remove_client(client_id: str, yes: bool, as_json: bool) -> None:
    """Delete CLIENT_ID, its consents, and revoke its tokens."""
    server = existing_client_server(client_id)
    confirm(f"remove client {client_id}, its consents and tokens", yes=yes)
    now = server.now()
    with server.database.transaction() as session:
        find_client(session, client_id)
        revoked = revoke_client_grants(session, client_id, now=now, reason="client_removed")
        session.execute(delete(Consent).where(Consent.client_id == client_id))
        session.execute(delete(Client).where(Client.client_id == client_id))
        record_event(session, "client_removed", at=now, client_id=client_id, actor="cli")
    emit_result(
        f"removed client {client_id}; revoked {revoked} grant(s)",
        {"client_id": client_id, "revoked_grants": revoked},
        as_json=as_json,
    )


@clients.command("rotate-secret")
@click.argument("client_id")
@yes_option
@json_option
def rotate_secret(client_id: str, yes: bool, as_json: bool) -> None:
    """Give a confidential client a new secret (printed once); the old one stops working."""
    server = existing_client_server(client_id, needs_secret=True)
    confirm(f"replace the secret of client {client_id}", yes=yes)
    now = server.now()
    secret = new_token()
    with server.database.transaction() as session:
        client = find_client(session, client_id)
        if client.secret_hash is None:
            fail(f"client {client_id!r} is public and has no secret")
        client.secret_hash = hash_token(secret)
        client.secret_expires_at = 0
        client.updated_at = now
        record_event(session, "client_secret_rotated", at=now, client_id=client_id, actor="cli")
    emit_result(
        f"new secret of {client_id}: {secret}\n(the secret is shown only now; store it safely)",
        {"client_id": client_id, "client_secret": secret},
        as_json=as_json,
    )
