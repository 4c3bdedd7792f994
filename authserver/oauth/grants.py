"""Grant types of the token endpoint, as subclasses of authlib's grants.

* Authorization code (RFC 6749 §4.1.3, OAuth 2.1 §4.1.3) with PKCE S256 required (RFC 7636 §4.6)
  and resource indicators (RFC 8707 §2.2). The code is consumed by ONE atomic ``UPDATE``
  (authlib's ``delete_authorization_code`` step is replaced) so that N parallel redemptions give
  exactly one success (S57); a replay of a consumed code revokes the grant it began (RFC 9700
  §4.5, S15), while a replay with wrong parameters is only refused (S16).
* Refresh token (RFC 6749 §6, RFC 9700 §4.14.2): rotated on every use by ONE atomic ``UPDATE``;
  a rotated token presented again after ``refresh_reuse_grace_seconds`` revokes the whole grant.
* Client credentials (RFC 6749 §4.4) for confidential clients.

authlib runs request validation (client authentication through the adapter, grant-type
permission, code lookup, ``redirect_uri``, scope); each ``create_token_response`` is ours.
Errors raised here are :mod:`authserver.errors`; the adapter converts authlib's own.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from typing import TYPE_CHECKING, Any

from authlib.oauth2.rfc6749 import grants as authlib_grants
from authlib.oauth2.rfc7636 import CodeChallenge
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from authserver.clients.store import STATIC_KIND, client_id_collides_with_user, mark_client_used
from authserver.context import AuthServer
from authserver.errors import (
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    InvalidTargetError,
    UnauthorizedClientError,
)
from authserver.oauth.resources import resolve_resource
from authserver.oauth.scopes import is_narrowing, parse_scope, resolve_scope
from authserver.oauth.tokens import (
    issue_access_token,
    issue_refresh_token,
    looks_like_jwt,
    revoke_grant,
)
from authserver.storage.audit import record_event
from authserver.storage.crypto import hash_token, new_id
from authserver.storage.models import AuthorizationCode, Client, Grant, RefreshToken, User

if TYPE_CHECKING:
    from authserver.oauth.adapter import CharterAuthorizationServer, TokenEndpointRequest

#: RFC 7636 §4.1: 43..128 characters of ``[A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~"``.
CODE_VERIFIER_PATTERN = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
TOKEN_HEADERS = [("Content-Type", "application/json")]


class OAuthClient:
    """A :class:`Client` row as authlib's ``ClientMixin`` expects it."""

    def __init__(self, row: Client) -> None:
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
    """An :class:`AuthorizationCode` row as authlib's ``AuthorizationCodeMixin``."""

    def __init__(self, row: AuthorizationCode) -> None:
        self.row = row

    def get_redirect_uri(self) -> str | None:
        return self.row.redirect_uri if self.row.redirect_uri_sent else None

    def get_scope(self) -> str:
        return self.row.scope


class RefreshRecord:
    """A :class:`RefreshToken` row as authlib's ``TokenMixin``."""

    def __init__(self, row: RefreshToken) -> None:
        self.row = row

    def check_client(self, client: OAuthClient) -> bool:
        return hmac.compare_digest(self.row.client_id, client.client_id)

    def get_scope(self) -> str:
        return self.row.scope


def s256(verifier: str) -> str:
    """``BASE64URL(SHA256(ASCII(code_verifier)))`` (RFC 7636 §4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class PkceS256(CodeChallenge):  # type: ignore[misc]
    """PKCE with S256 only, required for every client (OAuth 2.1 §4.1.1, S10-S14)."""

    DEFAULT_CODE_CHALLENGE_METHOD = "S256"
    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]  # noqa: RUF012 - authlib's class attribute

    def __init__(self) -> None:
        super().__init__(required=True)

    def validate_code_verifier(self, grant: Any, _result: Any) -> None:
        """Check ``code_verifier`` against the code's challenge; no downgrade (S12-S14)."""
        request = grant.request
        row: AuthorizationCode = request.authorization_code.row
        verifier = request.form.get("code_verifier")
        if not row.code_challenge or row.code_challenge_method != "S256":
            raise InvalidGrantError("the code was issued without an S256 code_challenge")
        if not verifier:
            raise InvalidRequestError("code_verifier is required")
        if not CODE_VERIFIER_PATTERN.fullmatch(verifier):
            raise InvalidRequestError("code_verifier must be 43-128 unreserved characters")
        if not hmac.compare_digest(s256(verifier), row.code_challenge):
            raise InvalidGrantError("code_verifier does not match the code_challenge")


def _token_body(access: str, expires_in: int, scope: str, refresh: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": expires_in,
        "scope": scope,
    }
    if refresh is not None:
        body["refresh_token"] = refresh
    return body


def _narrow_scope(requested: str | None, granted: str) -> str:
    """The requested scope when it narrows ``granted``; ``granted`` when none was asked (S26)."""
    if not parse_scope(requested):
        return granted
    if not is_narrowing(requested or "", granted):
        raise InvalidScopeError("scope may only narrow the granted scope")
    return " ".join(parse_scope(requested))


def _check_resource(server: AuthServer, request: TokenEndpointRequest, granted: str) -> str:
    """A token request's ``resource`` must be the granted one, or omitted (S31)."""
    if not request.resources:
        return granted
    requested = resolve_resource(server.settings, request.resources)
    if requested != granted:
        raise InvalidTargetError("resource differs from the one authorized")
    return granted


class _GrantMixin:
    """Access to the adapter's per-request context."""

    server: CharterAuthorizationServer
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

    def _issue(self, grant: Grant, scope: str, *, refresh: bool) -> dict[str, Any]:
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
        )
        refresh_token = (
            issue_refresh_token(self.ctx, self.session, grant, now=self.now) if refresh else None
        )
        mark_client_used(self.session, self.request.client.row, self.now)
        return _token_body(access.token, access.expires_in, scope, refresh_token)


class AuthorizationCodeGrant(_GrantMixin, authlib_grants.AuthorizationCodeGrant):  # type: ignore[misc]
    """Authorization code grant with atomic, replay-revoking consumption."""

    TOKEN_ENDPOINT_AUTH_METHODS = ["none", "client_secret_basic", "client_secret_post"]  # noqa: RUF012

    def query_authorization_code(self, code: str, client: OAuthClient) -> CodeRecord | None:
        """The code row bound to ``client`` (consumed or expired rows too: classified later)."""
        row = self.session.get(AuthorizationCode, hash_token(code))
        if row is None or not hmac.compare_digest(row.client_id, client.client_id):
            return None
        return CodeRecord(row)

    def authenticate_user(self, authorization_code: CodeRecord) -> User | None:
        user = self.session.get(User, authorization_code.row.subject)
        return None if user is None or user.disabled else user

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        client: OAuthClient = self.request.client
        row: AuthorizationCode = self.request.authorization_code.row
        sent_uri = self.request.payload.redirect_uri
        if sent_uri is not None and sent_uri != row.redirect_uri:
            raise InvalidGrantError("redirect_uri differs from the authorization request")
        resource = _check_resource(self.ctx, self.request, row.resource)
        scope = _narrow_scope(self.request.payload.scope, row.scope)
        if self.authenticate_user(self.request.authorization_code) is None:
            raise InvalidGrantError("the user of this code is unknown or disabled")
        self._consume(row)
        grant = Grant(
            id=new_id(),
            client_id=client.client_id,
            subject=row.subject,
            scope=row.scope,
            resource=resource,
            grant_type="authorization_code",
            code_hash=row.code_hash,
            created_at=self.now,
            expires_at=self.now + self.ctx.settings.refresh_token_absolute_ttl,
            revoked_at=None,
            revoked_reason=None,
        )
        self.session.add(grant)
        self.session.flush()
        body = self._issue(grant, scope, refresh=client.check_grant_type("refresh_token"))
        record_event(
            self.session,
            "grant_created",
            at=self.now,
            client_id=client.client_id,
            subject=row.subject,
            ip=self.request.ip,
            grant_id=grant.id,
        )
        return 200, body, TOKEN_HEADERS

    def _consume(self, row: AuthorizationCode) -> None:
        """Redeem the code with one atomic statement, or refuse it (and revoke on replay)."""
        result = self.session.execute(
            update(AuthorizationCode)
            .where(
                AuthorizationCode.code_hash == row.code_hash,
                AuthorizationCode.consumed_at.is_(None),
                AuthorizationCode.expires_at > self.now,
            )
            .values(consumed_at=self.now)
            .execution_options(synchronize_session=False)
        )
        if getattr(result, "rowcount", 0) == 1:
            return
        consumed_at = self.session.scalar(
            select(AuthorizationCode.consumed_at).where(
                AuthorizationCode.code_hash == row.code_hash
            )
        )
        if consumed_at is None:
            raise InvalidGrantError("the authorization code has expired")
        grant_ids = self.session.scalars(
            select(Grant.id).where(Grant.code_hash == row.code_hash)
        ).all()
        for grant_id in grant_ids:
            revoke_grant(self.session, grant_id, now=self.now, reason="code_replay")
        record_event(
            self.session,
            "code_replay_detected",
            at=self.now,
            client_id=row.client_id,
            subject=row.subject,
            ip=self.request.ip,
            grants=list(grant_ids),
        )
        raise InvalidGrantError("the authorization code was already used")


class RefreshTokenGrant(_GrantMixin, authlib_grants.RefreshTokenGrant):  # type: ignore[misc]
    """Refresh with rotation on every use and reuse detection."""

    TOKEN_ENDPOINT_AUTH_METHODS = ["none", "client_secret_basic", "client_secret_post"]  # noqa: RUF012
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token: str) -> RefreshRecord | None:
        """The row of ``refresh_token`` whatever its state; an access token is none (S38)."""
        if looks_like_jwt(refresh_token) or len(refresh_token) > 512:
            return None
        row = self.session.get(RefreshToken, hash_token(refresh_token))
        return RefreshRecord(row) if row is not None else None

    def authenticate_user(self, refresh_token: RefreshRecord) -> str:
        return refresh_token.row.subject

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        client: OAuthClient = self.request.client
        row: RefreshToken = self.request.refresh_token.row
        if row.revoked_at is not None:
            raise InvalidGrantError("the refresh token was revoked")
        _check_resource(self.ctx, self.request, row.resource)
        scope = _narrow_scope(self.request.payload.scope, row.scope)
        grant = self.session.get(Grant, row.grant_id)
        if grant is None or grant.revoked_at is not None:
            raise InvalidGrantError("the grant was revoked")
        if grant.expires_at <= self.now:
            raise InvalidGrantError("the grant has expired; authorize again")
        if grant.grant_type == "authorization_code":
            user = self.session.get(User, grant.subject)
            if user is None or user.disabled:
                raise InvalidGrantError("the user of this grant is unknown or disabled")
        self._rotate(row, grant)
        body = self._issue(grant, scope, refresh=client.check_grant_type("refresh_token"))
        return 200, body, TOKEN_HEADERS

    def _rotate(self, row: RefreshToken, grant: Grant) -> None:
        """Retire the token with one atomic statement, or refuse it (and revoke on reuse)."""
        result = self.session.execute(
            update(RefreshToken)
            .where(
                RefreshToken.token_hash == row.token_hash,
                RefreshToken.rotated_at.is_(None),
                RefreshToken.revoked_at.is_(None),
                RefreshToken.expires_at > self.now,
            )
            .values(rotated_at=self.now)
            .execution_options(synchronize_session=False)
        )
        if getattr(result, "rowcount", 0) == 1:
            return
        state = self.session.execute(
            select(RefreshToken.rotated_at, RefreshToken.revoked_at).where(
                RefreshToken.token_hash == row.token_hash
            )
        ).one()
        rotated_at, revoked_at = state
        if revoked_at is not None:
            raise InvalidGrantError("the refresh token was revoked")
        if rotated_at is None:
            raise InvalidGrantError("the refresh token has expired")
        if self.now - rotated_at <= self.ctx.settings.refresh_reuse_grace_seconds:
            raise InvalidGrantError("the refresh token was already used")
        revoke_grant(self.session, grant.id, now=self.now, reason="refresh_reuse")
        record_event(
            self.session,
            "refresh_reuse_detected",
            at=self.now,
            client_id=row.client_id,
            subject=row.subject,
            ip=self.request.ip,
            grant_id=grant.id,
        )
        raise InvalidGrantError("the refresh token was already used; the grant is revoked")

    def revoke_old_credential(self, refresh_token: RefreshRecord) -> None:
        """Done by :meth:`_rotate` before issuing."""


class ClientCredentialsGrant(_GrantMixin, authlib_grants.ClientCredentialsGrant):  # type: ignore[misc]
    """Client credentials for confidential clients; ``sub`` is the client id (S22)."""

    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]  # noqa: RUF012

    def validate_requested_scope(self) -> None:
        """Scope is resolved against the client's allowed set in :meth:`create_token_response`."""

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        client: OAuthClient = self.request.client
        if client.is_public:
            raise UnauthorizedClientError("public clients cannot use client_credentials")
        if client.row.kind != STATIC_KIND:
            # Only administrator-made clients may obtain tokens with no user behind them.
            raise UnauthorizedClientError(
                "only clients created by an administrator can use client_credentials",
                detail=f"client {client.client_id!r} is of kind {client.row.kind!r}",
            )
        if client_id_collides_with_user(self.session, client.client_id):
            # S22: the token's sub would be indistinguishable from this user's id or name.
            raise UnauthorizedClientError(
                "this client id collides with a user; client_credentials refused",
                detail=f"client {client.client_id!r} equals a user id",
            )
        scope = resolve_scope(self.ctx.settings, client.row, self.request.payload.scope)
        resource = resolve_resource(self.ctx.settings, self.request.resources)
        grant = Grant(
            id=new_id(),
            client_id=client.client_id,
            subject=client.client_id,
            scope=scope,
            resource=resource,
            grant_type="client_credentials",
            code_hash=None,
            created_at=self.now,
            expires_at=self.now + self.ctx.settings.access_token_ttl,
            revoked_at=None,
            revoked_reason=None,
        )
        self.session.add(grant)
        self.session.flush()
        return 200, self._issue(grant, scope, refresh=False), TOKEN_HEADERS
