"""``charter keys``: the ES256 signing keys (rotation with overlap, RFC 7517 JWKS)."""

from __future__ import annotations

from typing import Any

import click

from authserver.cli.context import open_server
from authserver.cli.output import (
    Column,
    confirm,
    emit_records,
    emit_result,
    fail,
    format_time,
    json_option,
    time_column,
    yes_option,
)
from authserver.context import AuthServer
from authserver.storage.models import SigningKey

KEY_COLUMNS = (
    Column("KID", "kid"),
    Column("ALG", "alg"),
    Column("STATUS", "status_shown"),
    time_column("CREATED", "created_at"),
    time_column("SIGNS FROM", "activates_at"),
    Column("RETIRED", "retired_shown"),
    time_column("LEAVES JWKS", "expires_at"),
)


def key_status(key: SigningKey, now: int) -> str:
    """``pending`` (published, not signing yet), ``active``, ``retired`` (verifies only) or
    ``expired`` (no longer published)."""
    if key.expires_at is not None and key.expires_at <= now:
        return "expired"
    if key.retired_at is not None and key.retired_at <= now:
        return "retired"
    if key.activates_at > now:
        return "pending"
    return "active"


def key_record(key: SigningKey, now: int) -> dict[str, Any]:
    """A key as shown by the CLI (public parts only)."""
    status = key_status(key, now)
    retires_later = key.retired_at is not None and key.retired_at > now
    shown = f"{status} (retires {format_time(key.retired_at)})" if retires_later else status
    return {
        "kid": key.kid,
        "alg": key.alg,
        "status": status,
        "status_shown": shown,
        "created_at": key.created_at,
        "activates_at": key.activates_at,
        "retired_at": key.retired_at,
        # The table's RETIRED column: only a time already past (a planned one is in STATUS).
        "retired_shown": "-" if retires_later else format_time(key.retired_at),
        "expires_at": key.expires_at,
    }


def check_key_encryption(server: AuthServer) -> None:
    """Exit 1 when this host's key-encryption key cannot open the stored keys.

    A new key encrypted with a different key-encryption key would be unusable by the servers
    (for example ``charter keys rotate`` run on an admin host without the servers'
    ``CHARTER_KEY_ENCRYPTION_KEY``).
    """
    if not server.keys.list_keys():
        return
    try:
        server.keys.signing_key()
    except RuntimeError as exc:
        if "decrypt" in str(exc):
            fail(
                str(exc),
                "run this command with the servers' CHARTER_KEY_ENCRYPTION_KEY (or --data-dir)",
            )


@click.group()
def keys() -> None:
    """Token signing keys."""


@keys.command("list")
@json_option
def list_keys(as_json: bool) -> None:
    """Every signing key, newest first."""
    server = open_server()
    now = server.now()
    records = [key_record(key, now) for key in server.keys.list_keys()]
    emit_records(
        records, KEY_COLUMNS, as_json=as_json, empty="no signing keys; run `charter keys rotate`"
    )


@keys.command("rotate")
@json_option
def rotate(as_json: bool) -> None:
    """Make a new signing key; the current ones retire when it starts signing."""
    server = open_server()
    check_key_encryption(server)
    key = server.keys.rotate()
    emit_result(
        f"new signing key {key.kid}: published now, signs from {format_time(key.activates_at)}; "
        "older keys stay in the JWKS until their tokens expire",
        key_record(key, server.now()),
        as_json=as_json,
    )


@keys.command("retire")
@click.argument("kid")
@click.option(
    "--immediately",
    is_flag=True,
    help="Also drop it from the JWKS now: tokens it signed stop working (key compromise).",
)
@yes_option
@json_option
def retire(kid: str, immediately: bool, yes: bool, as_json: bool) -> None:
    """Stop signing with KID (a new key is made if no other can sign).

    Key ids may start with "-": put options first and "--" before such a KID.
    """
    server = open_server()
    if kid not in {key.kid for key in server.keys.list_keys()}:
        fail(f"no signing key {kid!r}", "list the keys with `charter keys list`")
    check_key_encryption(server)
    action = f"retire key {kid}" + (" and invalidate every token it signed" if immediately else "")
    confirm(action, yes=yes)
    key = server.keys.retire(kid, immediately=immediately)
    emit_result(f"retired key {kid}", key_record(key, server.now()), as_json=as_json)
