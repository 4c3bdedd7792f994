"""The authorization code grant (RFC 6749 §4.1.3, OAuth 2.1 §4.1.3) with PKCE S256 required
(RFC 7636 §4.6, :mod:`authserver.oauth.pkce`) and resource indicators (RFC 8707 §2.2).

The code is consumed by ONE atomic ``UPDATE`` (authlib's ``delete_authorization_code`` step is
replaced) so that N parallel redemptions give exactly one success (S57); a replay of a consumed
code revokes the grant it began (RFC 9700 §4.5, S15), while a replay with wrong parameters is
only refused (S16).
"""

from __future__ import annotations

import hmac
from typing import Any, NoReturn

from authlib.oauth2.rfc6749 import grants as authlib_grants
from sqlalchemy import select

from authserver.errors import InvalidClientError, InvalidGrantError
from authserver.oauth.grants.base import (
    TOKEN_HEADERS,
    CodeRecord,
    GrantBase,
    OAuthClient,
    TokenResponse,
    check_resource,
    mark_client_used,
    narrow_scope,
    token_body,
)
from authserver.oauth.tokens import claims_of_person, sign_access_token
from authserver.storage.audit import event_values, note_recorded, record_event
from authserver.storage.code_redemption import AuditFields, Issued, redeem_and_issue
from authserver.storage.crypto import hash_token, new_id, new_token
from authserver.storage.grant_prelude import Prelude, read_client_and_code
from authserver.storage.issuance_locks import hold_client_and_user
from authserver.storage.models import AuthorizationCode, Grant, User
from authserver.storage.revocation import revoke_grant
from authserver.storage.token_rows import (
    CodeState,
    NewGrant,
    UserState,
    consume_code,
    find_code,
    find_user,
    insert_grant,
)


class AuthorizationCodeGrant(GrantBase, authlib_grants.AuthorizationCodeGrant):  # type: ignore[misc]
    """Authorization code grant with atomic, replay-revoking consumption."""

    TOKEN_ENDPOINT_AUTH_METHODS = ["none", "client_secret_basic", "client_secret_post"]  # noqa: RUF012

    prelude: Prelude[CodeState] | None = None

    def validate_token_request(self) -> None:
        """authlib's checks, after reading the client and the code in one statement (and on
        PostgreSQL taking the S95 locks, :mod:`authserver.storage.grant_prelude`)."""
        code = self.request.form.get("code")
        client_id = self.request.credentials.client_id
        if code and client_id and len(client_id) <= 2048:
            self.prelude = read_client_and_code(self.session, client_id, hash_token(code))
            self.request.read_client = self.prelude
        super().validate_token_request()

    def query_authorization_code(self, code: str, client: OAuthClient) -> CodeRecord | None:
        """The code row bound to ``client`` (consumed or expired rows too: classified later)."""
        code_hash = hash_token(code)
        prelude = self.prelude
        if prelude is not None and prelude.credential_hash == code_hash:
            row = prelude.credential
        else:
            row = find_code(self.session, code_hash)
        if row is None or not hmac.compare_digest(row.client_id, client.client_id):
            return None
        return CodeRecord(row)

    def authenticate_user(self, authorization_code: CodeRecord) -> User | None:
        user = self.session.get(User, authorization_code.row.subject)
        return None if user is None or user.disabled else user

    def create_token_response(self) -> TokenResponse:
        client: OAuthClient = self.request.client
        row: CodeState = self.request.authorization_code.row
        sent_uri = self.request.payload.redirect_uri
        if sent_uri is not None and sent_uri != row.redirect_uri:
            raise InvalidGrantError("redirect_uri differs from the authorization request")
        resource = check_resource(self.ctx, self.request, row.resource)
        scope = narrow_scope(self.request.payload.scope, row.scope)
        # S95: client and user locked against a revocation in flight, then the code consumed;
        # on PostgreSQL the prelude usually holds both locks already: their states are read
        # again in one statement.
        grant = NewGrant(
            id=new_id(),
            client_id=client.client_id,
            subject=row.subject,
            scope=row.scope,
            resource=resource,
            grant_type="authorization_code",
            code_hash=row.code_hash,
            created_at=self.now,
            expires_at=self.now + self.ctx.settings.refresh_token_absolute_ttl,
        )
        refresh = client.check_grant_type("refresh_token")
        prelude = self.prelude
        if prelude is not None and prelude.locked and prelude.credential is row:
            body = self._redeem_and_issue(row, grant, scope, refresh=refresh)
            return 200, body, TOKEN_HEADERS
        if not hold_client_and_user(self.session, client.client_id, row.subject, loaded=client.row):
            raise InvalidClientError("the client is disabled or was removed")
        user = self._live_user(find_user(self.session, row.subject))
        self._consume(row)
        insert_grant(self.session, grant)
        person = claims_of_person(user.username, user.display_name)
        body = self.issue(grant, scope, refresh=refresh, person=person)
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

    @staticmethod
    def _live_user(user: UserState | None) -> UserState:
        if user is None or user.disabled:
            raise InvalidGrantError("the user of this code is unknown or disabled")
        return user

    def _redeem_and_issue(
        self, row: CodeState, grant: NewGrant, scope: str, *, refresh: bool
    ) -> dict[str, Any]:
        """PostgreSQL, with the client's and the user's locks held by the prelude: check,
        consume and store in one statement (:mod:`authserver.storage.code_redemption`), then
        sign."""
        settings = self.ctx.settings
        refresh_token = new_token() if refresh else None
        issued = Issued(
            jti=new_id(),
            scope=scope,
            access_expires_at=self.now + settings.access_token_ttl,
            refresh_hash=hash_token(refresh_token) if refresh_token is not None else None,
            refresh_expires_at=min(self.now + settings.refresh_token_idle_ttl, grant.expires_at),
        )
        values = event_values(
            "grant_created",
            at=self.now,
            client_id=grant.client_id,
            subject=grant.subject,
            ip=self.request.ip,
            grant_id=grant.id,
        )
        redemption = redeem_and_issue(
            self.session,
            grant=grant,
            now=self.now,
            issued=issued,
            audit=AuditFields(values["ip"], values["request_id"], values["detail"]),
        )
        if not redemption.client_live:
            raise InvalidClientError("the client is disabled or was removed")
        user = self._live_user(redemption.user)
        if not redemption.consumed:
            self._refuse(row)
        note_recorded(self.session, redemption.audit_id, values)
        access = sign_access_token(
            self.ctx,
            self.server.signing_key,
            jti=issued.jti,
            client_id=grant.client_id,
            subject=grant.subject,
            scope=scope,
            resource=grant.resource,
            now=self.now,
            person=claims_of_person(user.username, user.display_name),
        )
        mark_client_used(self.session, self.request.client.row, self.now)
        return token_body(access.token, access.expires_in, scope, refresh_token)

    def _consume(self, row: CodeState) -> None:
        """Redeem the code with one atomic statement, or refuse it (and revoke on replay)."""
        if not consume_code(self.session, row.code_hash, self.now):
            self._refuse(row)

    def _refuse(self, row: CodeState) -> NoReturn:
        """The code was not redeemed: say why, and on replay revoke what it granted (S15)."""
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
