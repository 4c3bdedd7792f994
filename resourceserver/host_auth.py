"""Identity from the host application (Starlette "Authentication": ``AuthenticationMiddleware``
sets ``scope["user"]`` and ``scope["auth"]``), for an MCP server embedded in an application
that already authenticates its users (SECURITY-CASES S84).

:class:`HostAuthMiddleware` takes the place of the bearer middleware: the caller is
``request.user`` (its ``identity``, else its ``display_name``) with the scopes of
``request.auth.scopes``. Charter verifies no token of its own in this mode: an
``Authorization`` header is the host's business, so a Charter access token grants nothing here.
Per-tool scopes then filter listing and calls as with tokens (403 ``insufficient_scope``). An
unauthenticated caller gets 401 (or, with public tools, goes on as the anonymous caller).
"""

from __future__ import annotations

import logging
from collections.abc import Collection

from starlette.authentication import BaseUser
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from resourceserver.anonymous import AnonymousLimiter
from resourceserver.auth import serve_without_credentials
from resourceserver.principal import Principal
from resourceserver.settings import ResourceServerSettings

logger = logging.getLogger(__name__)

#: The ``client_id`` of principals the host authenticated.
HOST_CLIENT_ID = "host-application"


def subject_of(user: BaseUser) -> str:
    """The host user's stable identity, else its display name."""
    try:
        identity = user.identity
    except NotImplementedError:
        identity = ""
    return str(identity or user.display_name)


class HostAuthMiddleware:
    """Puts the host-authenticated user in ``scope["state"]["principal"]`` on the MCP path."""

    def __init__(
        self,
        app: ASGIApp,
        settings: ResourceServerSettings,
        protected_paths: Collection[str] | None = None,
        anonymous: AnonymousLimiter | None = None,
    ) -> None:
        self.app = app
        self.settings = settings
        paths = protected_paths if protected_paths is not None else (settings.resource_path,)
        self.protected_paths = tuple(path.rstrip("/") or "/" for path in paths)
        self.anonymous = anonymous

    def is_protected(self, path: str) -> bool:
        return any(
            path == protected or path.startswith(protected.rstrip("/") + "/")
            for protected in self.protected_paths
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.is_protected(scope["path"]):
            await self.app(scope, receive, send)
            return
        user, auth = scope.get("user"), scope.get("auth")
        if not isinstance(user, BaseUser) or auth is None:
            logger.error("host authentication: no AuthenticationMiddleware runs before Charter")
            body = {"error": "server_error", "error_description": "authentication is not set up"}
            await JSONResponse(body, status_code=500)(scope, receive, send)
            return
        if not user.is_authenticated:
            await self._unauthenticated(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = Principal(
            subject=subject_of(user),
            client_id=HOST_CLIENT_ID,
            scopes=frozenset(str(scope_name) for scope_name in getattr(auth, "scopes", ())),
            token_id=HOST_CLIENT_ID,
            expires_at=2**62,
        )
        await self.app(scope, receive, send)

    async def _unauthenticated(self, scope: Scope, receive: Receive, send: Send) -> None:
        await serve_without_credentials(
            self.app, self.settings, self.anonymous, scope, receive, send
        )
