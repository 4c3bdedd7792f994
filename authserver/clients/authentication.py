"""Client authentication at the token, revocation and introspection endpoints.

RFC 6749 §2.3.1 (``client_secret_basic``, ``client_secret_post``), OAuth 2.1 §2.4 and RFC 7591
§2 (``none``: a public client names itself with ``client_id``). Secrets are compared in constant
time against their stored hashes; unknown and known clients fail alike; repeated wrong secrets
for one client id are throttled through the shared rate counters (S20), without locking out
the client that knows its secret (only failures are slowed down).
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from authserver.clients.credentials import NONE, PresentedCredentials
from authserver.clients.store import load_client_state
from authserver.context import AuthServer
from authserver.errors import InvalidClientError, SlowDownError
from authserver.storage import rate_limits
from authserver.storage.client_rows import ClientState, ReadClient
from authserver.storage.crypto import hash_token, token_matches

#: Window of the failed-secret counter, seconds (``failed_auth_limit`` failures per window).
FAILED_SECRET_WINDOW = 300
_FAILED = "client authentication failed"


def _throttle_key(client_id: str) -> str:
    return "client-secret:" + hash_token(client_id)[:40]


def authenticate_client(
    server: AuthServer,
    session: Session,
    credentials: PresentedCredentials,
    *,
    now: int,
    confidential_only: bool = False,
    read: ReadClient | None = None,
) -> ClientState:
    """The client the credentials prove (its row as a tuple, read in ``session``'s
    transaction), or ``invalid_client`` (401).

    A client must use the method it registered (``token_endpoint_auth_method``): a confidential
    client cannot fall back to ``none`` (S21). ``confidential_only`` refuses public clients
    (introspection). Past ``failed_auth_limit`` wrong secrets for one client id in
    :data:`FAILED_SECRET_WINDOW`, further wrong secrets give 429 ``slow_down``; the right
    secret is still accepted (only failures are throttled). ``read``: the client's row as
    this transaction already read it (:func:`authserver.clients.store.load_client_state`).
    """
    basic = credentials.basic_tried
    if credentials.method == NONE:
        client = load_client_state(server, session, credentials.client_id, read=read)
        if client is None:
            raise InvalidClientError(_FAILED, detail=f"unknown client {credentials.client_id!r}")
        if client.token_endpoint_auth_method != NONE:
            raise InvalidClientError(
                "this client must authenticate", detail=f"{client.client_id} sent no secret"
            )
        if confidential_only:
            raise InvalidClientError("this endpoint is for confidential clients only")
        return client

    # Load and compare first, whatever the counter says: a correct secret always gets
    # through, so wrong guesses by others cannot lock the real client out. Only failures
    # are counted and, past the limit, answered with 429 ``slow_down`` instead of 401.
    client = load_client_state(server, session, credentials.client_id, read=read)
    stored = client.secret_hash if client is not None else None
    matched = token_matches(credentials.secret or "", stored)
    if client is None or not matched:
        wait = rate_limits.hit(
            session,
            _throttle_key(credentials.client_id),
            now=now,
            window=FAILED_SECRET_WINDOW,
            limit=server.settings.failed_auth_limit,
        )
        if wait:
            raise SlowDownError(wait, detail=f"client {credentials.client_id!r} throttled")
        raise InvalidClientError(
            _FAILED, basic_tried=basic, detail=f"bad secret for {credentials.client_id!r}"
        )
    if client.token_endpoint_auth_method != credentials.method:
        raise InvalidClientError(
            f"this client is registered for {client.token_endpoint_auth_method}",
            basic_tried=basic,
        )
    if client.secret_expires_at and client.secret_expires_at <= now:
        raise InvalidClientError("the client secret has expired", basic_tried=basic)
    return client
