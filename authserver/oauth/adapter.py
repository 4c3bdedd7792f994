"""The one adapter between Starlette endpoints and authlib's grant machinery (RFC 6749 §3.2).

:func:`token_response` runs synchronously (call it in a worker thread): it opens one
database transaction, binds the process's :class:`CharterAuthorizationServer` (an authlib
``AuthorizationServer`` with the grants registered, built once) to that session, the signing
key and the request time in a :class:`RequestServer`, lets authlib pick and validate the
grant, and returns ``(status, body)``. authlib's errors become
:mod:`authserver.errors`; an :class:`~authserver.errors.OAuthError` is raised
*after* the transaction commits, so what a refused request must leave behind (a revoked grant
after replay, a failed-secret counter) is kept.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import AuthorizationServer, UnsupportedGrantTypeError
from joserfc.jwk import ECKey
from sqlalchemy.orm import Session

from authserver import errors
from authserver.clients.authentication import authenticate_client
from authserver.clients.store import load_client_state
from authserver.context import AuthServer
from authserver.oauth.grants.base import OAuthClient
from authserver.oauth.grants.registry import REGISTERED_GRANTS
from authserver.oauth.token_request import TokenEndpointRequest

_ERRORS: dict[str, type[errors.OAuthError]] = {
    cls.error: cls
    for cls in (
        errors.InvalidRequestError,
        errors.InvalidClientError,
        errors.InvalidGrantError,
        errors.UnauthorizedClientError,
        errors.UnsupportedGrantTypeError,
        errors.InvalidScopeError,
        errors.InvalidTargetError,
        errors.AccessDeniedError,
    )
}


def from_authlib(exc: OAuth2Error) -> errors.OAuthError:
    """The :mod:`authserver.errors` equivalent of an authlib error."""
    cls = _ERRORS.get(str(exc.error), errors.InvalidRequestError)
    description = str(exc.description or "")
    if cls is errors.UnsupportedGrantTypeError:
        description = "unsupported grant_type"
    return cls(description)


class CharterAuthorizationServer(AuthorizationServer):  # type: ignore[misc]
    """authlib's authorization server with this server's grants registered, built once per
    process (:func:`authorization_server`): it holds no request state, and every grant it
    picks is bound to a :class:`RequestServer` for that one request."""

    def __init__(self, scopes_supported: tuple[str, ...]) -> None:
        super().__init__(scopes_supported=list(scopes_supported))
        for grant in REGISTERED_GRANTS:
            self.register_grant(grant.implementation, [make() for make in grant.extensions])

    def token_grant(self, request: TokenEndpointRequest, bound: RequestServer) -> Any:
        """The registered grant for ``request``'s ``grant_type``, bound to ``bound``
        (authlib's ``get_token_grant``, with the per-request server in place of this one)."""
        for grant_cls, extensions in self._token_grants:
            if grant_cls.check_token_endpoint(request):
                grant = grant_cls(request, bound)
                for extension in extensions:
                    extension(grant)
                return grant
        raise UnsupportedGrantTypeError(request.payload.grant_type)


@lru_cache(maxsize=8)
def authorization_server(scopes_supported: tuple[str, ...]) -> CharterAuthorizationServer:
    """The process's authlib server for ``scopes_supported`` (read-only once built)."""
    return CharterAuthorizationServer(scopes_supported)


class RequestServer:
    """What a grant of one token request calls as its ``server``: the request's session, key
    and time, client authentication through :mod:`authserver.clients.authentication`, and
    the shared authlib server's scope check."""

    def __init__(
        self,
        shared: CharterAuthorizationServer,
        ctx: AuthServer,
        session: Session,
        signing_key: ECKey,
        now: int,
    ) -> None:
        self.shared = shared
        self.ctx = ctx
        self.session = session
        self.signing_key = signing_key
        self.now = now

    def query_client(self, client_id: str) -> OAuthClient | None:
        row = load_client_state(self.ctx, self.session, client_id)
        return OAuthClient(row) if row is not None else None

    def authenticate_client(
        self, request: TokenEndpointRequest, methods: Sequence[str], endpoint: str = "token"
    ) -> OAuthClient:
        row = authenticate_client(
            self.ctx, self.session, request.credentials, now=self.now, read=request.read_client
        )
        request.auth_method = request.credentials.method
        return OAuthClient(row)

    def validate_requested_scope(self, scope: str | None) -> None:
        self.shared.validate_requested_scope(scope)

    def save_token(self, token: dict[str, Any], request: TokenEndpointRequest) -> None:
        """Tokens are stored by the grants as they are issued."""

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """No signals."""

    def respond(self, request: TokenEndpointRequest) -> tuple[int, dict[str, Any]]:
        """Pick the grant, validate the request with it, and issue tokens."""
        try:
            grant = self.shared.token_grant(request, self)
            grant.validate_token_request()
            status, body, _headers = grant.create_token_response()
        except OAuth2Error as exc:
            raise from_authlib(exc) from None
        return int(status), dict(body)


def token_response(
    ctx: AuthServer,
    form: Mapping[str, str],
    resources: Sequence[str],
    headers: Mapping[str, str],
    *,
    ip: str | None = None,
) -> tuple[int, dict[str, Any]]:
    """Answer one token request (blocking: run it in a worker thread)."""
    # The key store reads in its own transaction: fetch the key before ours begins (SQLite
    # allows one writer, and every transaction here is a write transaction).
    signing_key = ctx.keys.signing_key()
    # A metadata document client was fetched or refreshed before this thread started (the
    # endpoint awaits :func:`authserver.clients.store.prefetch_client`): never hold the
    # database's write lock, nor a worker thread, over a network fetch.
    now = ctx.now()
    uri = ctx.settings.endpoint_url("/token")
    failure: errors.OAuthError | None = None
    shared = authorization_server(tuple(ctx.settings.scopes_supported))
    with ctx.database.transaction() as session:
        server = RequestServer(shared, ctx, session, signing_key, now)
        try:
            request = TokenEndpointRequest(uri, form, resources, headers, ip=ip)
            result = server.respond(request)
        except errors.OAuthError as exc:
            failure = exc
    if failure is not None:
        raise failure
    return result
