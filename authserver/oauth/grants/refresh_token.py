"""The refresh token grant (RFC 6749 §6, RFC 9700 §4.14.2): rotated on every use by ONE atomic
``UPDATE``; a rotated token presented again after ``refresh_reuse_grace_seconds`` revokes the
whole grant (S24), within it is only refused (a client racing itself, S25). No scope or
resource escalation (S26, S31); idle and absolute expiry (S27).
"""

from __future__ import annotations

from typing import Any, NoReturn

from authlib.oauth2.rfc6749 import grants as authlib_grants
from sqlalchemy import select

from authserver.errors import InvalidClientError, InvalidGrantError
from authserver.oauth.grants.base import (
    TOKEN_HEADERS,
    GrantBase,
    OAuthClient,
    RefreshRecord,
    TokenResponse,
    check_resource,
    mark_client_used,
    narrow_scope,
    token_body,
)
from authserver.oauth.tokens import claims_of_person, looks_like_jwt, sign_access_token
from authserver.storage.audit import record_event
from authserver.storage.crypto import hash_token, new_id, new_token
from authserver.storage.grant_prelude import Prelude, read_client_and_refresh_token
from authserver.storage.issuance_locks import hold_client_and_user, is_postgresql
from authserver.storage.models import RefreshToken
from authserver.storage.refresh_rotation import Successors, rotate_and_issue
from authserver.storage.revocation import revoke_grant
from authserver.storage.token_rows import (
    GrantState,
    RefreshTokenState,
    find_refresh_token,
    lock_grant,
    rotate_refresh_token,
)


def _may_be_refresh_token(token: str) -> bool:
    """False for what cannot be one of our refresh tokens: a JWT (an access token, S38), or
    anything longer than 512 characters."""
    return not looks_like_jwt(token) and len(token) <= 512


class RefreshTokenGrant(GrantBase, authlib_grants.RefreshTokenGrant):  # type: ignore[misc]
    """Refresh with rotation on every use and reuse detection."""

    TOKEN_ENDPOINT_AUTH_METHODS = ["none", "client_secret_basic", "client_secret_post"]  # noqa: RUF012
    INCLUDE_NEW_REFRESH_TOKEN = True

    prelude: Prelude[RefreshTokenState] | None = None

    def validate_token_request(self) -> None:
        """authlib's checks, after reading the client and the token in one statement (and on
        PostgreSQL taking the S95 locks, :mod:`authserver.storage.grant_prelude`)."""
        token = self.request.form.get("refresh_token")
        client_id = self.request.credentials.client_id
        if token and _may_be_refresh_token(token) and client_id and len(client_id) <= 2048:
            self.prelude = read_client_and_refresh_token(self.session, client_id, hash_token(token))
            self.request.read_client = self.prelude
        super().validate_token_request()

    def authenticate_refresh_token(self, refresh_token: str) -> RefreshRecord | None:
        """The row of ``refresh_token`` whatever its state; an access token is none (S38)."""
        if not _may_be_refresh_token(refresh_token):
            return None
        token_hash = hash_token(refresh_token)
        prelude = self.prelude
        if prelude is not None and prelude.credential_hash == token_hash:
            row = prelude.credential
        else:
            row = find_refresh_token(self.session, token_hash)
        return RefreshRecord(row) if row is not None else None

    def authenticate_user(self, refresh_token: RefreshRecord) -> str:
        return refresh_token.row.subject

    def create_token_response(self) -> TokenResponse:
        client: OAuthClient = self.request.client
        row: RefreshTokenState = self.request.refresh_token.row
        if row.revoked_at is not None:
            raise InvalidGrantError("the refresh token was revoked")
        check_resource(self.ctx, self.request, row.resource)
        scope = narrow_scope(self.request.payload.scope, row.scope)
        refresh = client.check_grant_type("refresh_token")
        # S95: client, user, then grant, locked in this order against a revocation in flight;
        # on PostgreSQL the first two locks are usually taken by the prelude already, and the
        # client's state is read again with the grant's lock.
        prelude = self.prelude
        locked = prelude is not None and prelude.locked and prelude.credential is row
        if not locked and not hold_client_and_user(
            self.session, client.client_id, row.subject, loaded=client.row
        ):
            raise InvalidClientError("the client is disabled or was removed")
        if is_postgresql(self.session):
            return 200, self._rotate_and_issue(row, scope, refresh=refresh), TOKEN_HEADERS
        grant = lock_grant(self.session, row.grant_id, row.subject)
        grant = self._check_grant(grant)
        self._rotate(row, grant)
        person = claims_of_person(grant.user_username, grant.user_display_name)
        body = self.issue(grant, scope, refresh=refresh, person=person)
        return 200, body, TOKEN_HEADERS

    def _check_grant(self, grant: GrantState | None) -> GrantState:
        """``grant`` as read under its lock, when it may still issue tokens."""
        if grant is None or grant.revoked_at is not None:
            raise InvalidGrantError("the grant was revoked")
        if grant.expires_at <= self.now:
            raise InvalidGrantError("the grant has expired; authorize again")
        if grant.grant_type == "authorization_code" and not grant.user_live:
            raise InvalidGrantError("the user of this grant is unknown or disabled")
        return grant

    def _rotate_and_issue(
        self, row: RefreshTokenState, scope: str, *, refresh: bool
    ) -> dict[str, Any]:
        """PostgreSQL: lock, check, rotate and store in one statement
        (:mod:`authserver.storage.refresh_rotation`), then sign."""
        settings = self.ctx.settings
        successor = new_token() if refresh else None
        successors = Successors(
            jti=new_id(),
            scope=scope,
            access_expires_at=self.now + settings.access_token_ttl,
            successor_hash=hash_token(successor) if successor is not None else None,
            successor_idle_expires_at=self.now + settings.refresh_token_idle_ttl,
        )
        rotation = rotate_and_issue(
            self.session,
            client_id=self.request.client.client_id,
            grant_id=row.grant_id,
            user_id=row.subject,
            presented_hash=row.token_hash,
            now=self.now,
            successors=successors,
        )
        if rotation.grant is not None and not rotation.client_live:
            raise InvalidClientError("the client is disabled or was removed")
        grant = self._check_grant(rotation.grant)
        if not rotation.rotated:
            self._refuse(row, grant)
        access = sign_access_token(
            self.ctx,
            self.server.signing_key,
            jti=successors.jti,
            client_id=grant.client_id,
            subject=grant.subject,
            scope=scope,
            resource=grant.resource,
            now=self.now,
            person=claims_of_person(grant.user_username, grant.user_display_name),
        )
        mark_client_used(self.session, self.request.client.row, self.now)
        return token_body(access.token, access.expires_in, scope, successor)

    def _rotate(self, row: RefreshTokenState, grant: GrantState) -> None:
        """Retire the token with one atomic statement, or refuse it (and revoke on reuse)."""
        if not rotate_refresh_token(self.session, row.token_hash, self.now):
            self._refuse(row, grant)

    def _refuse(self, row: RefreshTokenState, grant: GrantState) -> NoReturn:
        """The token was not retired: say why, and revoke the grant on reuse (S24) unless
        within ``refresh_reuse_grace_seconds`` of its rotation (S25)."""
        state = self.session.execute(
            select(RefreshToken.rotated_at, RefreshToken.revoked_at).where(
                RefreshToken.token_hash == row.token_hash
            )
        ).first()
        if state is None:  # purged since it was read (it had expired): an answer, not a 500
            raise InvalidGrantError("the refresh token has expired")
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
