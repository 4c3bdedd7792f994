"""What the grants of the token endpoint share (RFC 6749 §5.1): authlib's views of our rows,
scope narrowing (S26), the resource check (S31), and issuing the token response.

authlib runs request validation (client authentication through the adapter, grant-type
permission, code lookup, ``redirect_uri``, scope); each grant's ``create_token_response`` is
ours. Errors raised here are :mod:`authserver.errors`; the adapter converts authlib's own.
"""

from __future__ import annotations

import hmac
from typing import Any, Protocol

from joserfc.jwk import ECKey
from sqlalchemy import update
from sqlalchemy.orm import Session

from authserver.context import AuthServer
from authserver.errors import InvalidClientError, InvalidScopeError, InvalidTargetError
from authserver.oauth.resources import resolve_resource
from authserver.oauth.scopes import is_narrowing, parse_scope
from authserver.oauth.token_request import TokenEndpointRequest
from authserver.oauth.tokens import IssuingGrant, issue_access_token, issue_refresh_token
from authserver.storage.client_rows import ClientState
from authserver.storage.issuance_locks import hold_client
from authserver.storage.models import Client
from authserver.storage.token_rows import CodeState, RefreshTokenState

TOKEN_HEADERS = [("Content-Type", "application/json")]
#: What ``create_token_response`` returns: status, body, headers.
TokenResponse = tuple[int, dict[str, Any], list[tuple[str, str]]]


class OAuthClient:
    """A client row (read by client authentication) as authlib's ``ClientMixin`` expects it."""

    def __init__(self, row: ClientState) -> None:
        self.row = row
        self.client_id = row.client_id

    def __repr__(self) -> str:
        return f"<OAuthClient {self.client_id!r}>"

    @property
    def is_public(self) -> bool:
        """True for a client without a secret (``token_endpoint_auth_method`` ``none``)."""
        return self.row.token_endpoint_auth_method == "none"  # noqa: S105

    def get_client_id(self) -> str:
        return self.client_id

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in (self.row.grant_types or [])

    def check_response_type(self, response_type: str) -> bool:
        return response_type in (self.row.response_types or [])

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in (self.row.redirect_uris or [])

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == self.row.token_endpoint_auth_method

    def get_default_redirect_uri(self) -> str | None:
        uris = self.row.redirect_uris or []
        return uris[0] if len(uris) == 1 else None

    def get_allowed_scope(self, scope: str) -> str:
        return scope


class CodeRecord:
    """An authorization code row as authlib's ``AuthorizationCodeMixin``."""

    def __init__(self, row: CodeState) -> None:
        self.row = row

    def get_redirect_uri(self) -> str | None:
        return self.row.redirect_uri if self.row.redirect_uri_sent else None

    def get_scope(self) -> str:
        return self.row.scope


class RefreshRecord:
    """A refresh token row as authlib's ``TokenMixin``."""

    def __init__(self, row: RefreshTokenState) -> None:
        self.row = row

    def check_client(self, client: OAuthClient) -> bool:
        return hmac.compare_digest(self.row.client_id, client.client_id)

    def get_scope(self) -> str:
        return self.row.scope


def token_body(access: str, expires_in: int, scope: str, refresh: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": expires_in,
        "scope": scope,
    }
    if refresh is not None:
        body["refresh_token"] = refresh
    return body


def narrow_scope(requested: str | None, granted: str) -> str:
    """The requested scope when it narrows ``granted``; ``granted`` when none was asked (S26)."""
    if not parse_scope(requested):
        return granted
    if not is_narrowing(requested or "", granted):
        raise InvalidScopeError("scope may only narrow the granted scope")
    return " ".join(parse_scope(requested))


def check_resource(server: AuthServer, request: TokenEndpointRequest, granted: str) -> str:
    """A token request's ``resource`` must be the granted one, or omitted (S31)."""
    if not request.resources:
        return granted
    requested = resolve_resource(server.settings, request.resources)
    if requested != granted:
        raise InvalidTargetError("resource differs from the one authorized")
    return granted


class IssuingServer(Protocol):
    """What a grant needs of the adapter's per-request authorization server."""

    ctx: AuthServer
    session: Session
    signing_key: ECKey
    now: int


class UsedClient(Protocol):
    """What :func:`mark_client_used` reads of a client row (ORM instance or tuple)."""

    @property
    def client_id(self) -> str: ...
    @property
    def last_used_at(self) -> int | None: ...


def mark_client_used(session: Session, client: UsedClient, now: int) -> None:
    """Record that ``client`` obtained tokens (keeps it from the reaper, S48). Writes at most
    once a minute per client (``client`` is its row as read in this transaction)."""
    if client.last_used_at is None or now - client.last_used_at >= 60:
        session.execute(
            update(Client).where(Client.client_id == client.client_id).values(last_used_at=now)
        )


class GrantBase:
    """What every grant shares: the request's context, and issuing the token response."""

    server: IssuingServer
    request: TokenEndpointRequest

    @property
    def ctx(self) -> AuthServer:
        return self.server.ctx

    @property
    def session(self) -> Session:
        return self.server.session

    @property
    def now(self) -> int:
        return self.server.now

    def hold_client(self) -> None:
        """Lock the client row against a concurrent revocation and check it again (S95); the
        first lock every grant takes (:mod:`authserver.storage.issuance_locks`)."""
        client: OAuthClient = self.request.client
        if not hold_client(self.session, client.client_id, loaded=client.row):
            raise InvalidClientError("the client is disabled or was removed")

    def issue(
        self,
        grant: IssuingGrant,
        scope: str,
        *,
        refresh: bool,
        person: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """The token response; ``person``: the subject's person claims if already read."""
        access = issue_access_token(
            self.ctx,
            self.session,
            self.server.signing_key,
            grant_id=grant.id,
            client_id=grant.client_id,
            subject=grant.subject,
            scope=scope,
            resource=grant.resource,
            now=self.now,
            person=person,
        )
        refresh_token = (
            issue_refresh_token(self.ctx, self.session, grant, now=self.now) if refresh else None
        )
        mark_client_used(self.session, self.request.client.row, self.now)
        return token_body(access.token, access.expires_in, scope, refresh_token)
