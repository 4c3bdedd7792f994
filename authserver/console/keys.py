"""The console's signing keys (RFC 7517 JWKS; RFC 7515 ``kid``): list, and rotate with overlap
as ``charter keys rotate`` does (:meth:`authserver.storage.signing_keys.KeyStore.rotate`: the
new key is published now and signs after the publish-ahead time; older keys stay in the JWKS
until their tokens expire). A rotation is audited with the admin as actor."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from authserver.console.actions import Action, ActionRequest, Done, Refused, audit
from authserver.context import AuthServer

PAGE = "/keys"
#: The one target of a rotation (it acts on the whole key set).
ALL_KEYS = "signing-keys"


def keys_page(server: AuthServer, _session: Session, _query: Mapping[str, str]) -> dict[str, Any]:
    """Every key, newest first (public parts only)."""
    from authserver.cli.keys import key_record  # the CLI's record, loaded on the first page

    now = server.now()
    return {"keys": [key_record(key, now) for key in server.keys.list_keys()], "target": ALL_KEYS}


def _ask_rotate(_server: AuthServer, _session: Session, request: ActionRequest) -> str:
    if request.target != ALL_KEYS:
        raise Refused(404, "There is no such key set.")
    return (
        "Make a new signing key? It is published now and signs once the publish-ahead time "
        "has passed; the current keys then retire and stay published until their tokens expire."
    )


def _rotate(server: AuthServer, request: ActionRequest) -> Done:
    if request.target != ALL_KEYS:
        raise Refused(404, "There is no such key set.")
    key = server.keys.rotate()
    with server.database.transaction() as session:
        audit(session, request, "signing_key_rotated", kid=key.kid)
    return Done(f"New signing key {key.kid} published.")


ACTIONS = (Action("keys-rotate", PAGE, _ask_rotate, _rotate, "New signing key published."),)
