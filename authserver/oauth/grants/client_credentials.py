"""The client credentials grant (RFC 6749 §4.4) for confidential clients an administrator
created; the token's ``sub`` is the client id, which never names a user (S22).
"""

from __future__ import annotations

from authlib.oauth2.rfc6749 import grants as authlib_grants

from authserver.accounts.users import names_a_user
from authserver.errors import UnauthorizedClientError
from authserver.oauth.grants.base import TOKEN_HEADERS, GrantBase, OAuthClient, TokenResponse
from authserver.oauth.resources import resolve_resource
from authserver.oauth.scopes import resolve_scope
from authserver.storage.crypto import new_id
from authserver.storage.models import ClientKind
from authserver.storage.token_rows import NewGrant, insert_grant


class ClientCredentialsGrant(GrantBase, authlib_grants.ClientCredentialsGrant):  # type: ignore[misc]
    """Client credentials for confidential clients; ``sub`` is the client id (S22)."""

    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]  # noqa: RUF012

    def validate_requested_scope(self) -> None:
        """Scope is resolved against the client's allowed set in :meth:`create_token_response`."""

    def create_token_response(self) -> TokenResponse:
        client: OAuthClient = self.request.client
        if client.is_public:
            raise UnauthorizedClientError("public clients cannot use client_credentials")
        if client.row.kind != ClientKind.STATIC:
            # Only administrator-made clients may obtain tokens with no user behind them.
            raise UnauthorizedClientError(
                "only clients created by an administrator can use client_credentials",
                detail=f"client {client.client_id!r} is of kind {client.row.kind!r}",
            )
        if names_a_user(self.session, client.client_id):
            # S22: the token's sub would be indistinguishable from this user's id or name.
            raise UnauthorizedClientError(
                "this client id collides with a user; client_credentials refused",
                detail=f"client {client.client_id!r} equals a user id",
            )
        self.hold_client()  # S95: against a revocation of the client in flight
        scope = resolve_scope(self.ctx.settings, client.row, self.request.payload.scope)
        resource = resolve_resource(self.ctx.settings, self.request.resources)
        grant = NewGrant(
            id=new_id(),
            client_id=client.client_id,
            subject=client.client_id,
            scope=scope,
            resource=resource,
            grant_type="client_credentials",
            code_hash=None,
            created_at=self.now,
            expires_at=self.now + self.ctx.settings.access_token_ttl,
        )
        insert_grant(self.session, grant)
        # No person claims: no user has this id (names_a_user above, in this transaction).
        return 200, self.issue(grant, scope, refresh=False, person={}), TOKEN_HEADERS
