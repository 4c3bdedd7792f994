"""Bearer-token authentication of the MCP endpoint (RFC 6750 §2.1, §3; RFC 9728 §5.1; MCP
2025-11-25 "Authorization" §Protected Resource Metadata Discovery, §Scope Challenge Handling).

:class:`BearerAuthMiddleware` guards the protected paths: it takes the token from the
``Authorization`` header only (never the query string or the body), verifies it, and puts the
:class:`~resourceserver.principal.Principal` in ``scope["state"]["principal"]``. Failures get
:func:`challenge_response`: 401 (no token: no error code; bad token: ``invalid_token``) or 403
(``insufficient_scope``), each with ``WWW-Authenticate: Bearer resource_metadata=…, scope=…``.

On a server with public tools, prompts or resources (an ``anonymous`` limiter given), a request
without any ``Authorization`` header goes on as :data:`~resourceserver.principal.ANONYMOUS`,
within the anonymous rate limit (429 past it); a bad token is still 401 ``invalid_token``,
never downgraded to anonymous (S83).

Browser clients are served CORS on the protected paths: preflights are answered before
authentication, and every response exposes ``WWW-Authenticate`` and the MCP headers. Which
origins may call at all is :class:`resourceserver.origin.OriginGuard`'s decision.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Collection

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from resourceserver.anonymous import AnonymousLimiter
from resourceserver.errors import InsufficientScopeError, InvalidTokenError, ResourceServerError
from resourceserver.jwks import KeySourceError
from resourceserver.principal import ANONYMOUS, Principal
from resourceserver.request_headers import request_headers
from resourceserver.settings import ResourceServerSettings
from resourceserver.verifier import TokenVerifier

logger = logging.getLogger(__name__)

#: RFC 6750 §2.1 ``b64token``.
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
#: Characters allowed inside a quoted auth-param value we emit (no quote, backslash or controls).
_UNSAFE_PARAM_CHARS = re.compile(r'[^\x20-\x7e]|["\\]')

CORS_EXPOSE_HEADERS = "WWW-Authenticate, Mcp-Session-Id, MCP-Protocol-Version"
CORS_ALLOW_HEADERS = (
    "Authorization, Content-Type, Accept, Mcp-Session-Id, MCP-Protocol-Version, Last-Event-ID, "
    "Mcp-Method, Mcp-Name"
)
#: MCP 2026-07-28 ``Mcp-Param-{Name}`` headers a preflight may ask for (RFC 9110 tokens).
_PARAM_HEADER = re.compile(r"^mcp-param-[!#$%&'*+\-.^_`|~0-9a-z]{1,64}$")
CORS_ALLOW_METHODS = "GET, POST, DELETE, OPTIONS"


def _quote(value: str) -> str:
    return '"' + _UNSAFE_PARAM_CHARS.sub("", value) + '"'


def _challenge_scope(settings: ResourceServerSettings, error: ResourceServerError | None) -> str:
    scopes = [settings.base_scope] if settings.base_scope else []
    if isinstance(error, InsufficientScopeError):
        scopes += sorted(error.required - {settings.base_scope})
    return " ".join(scopes)


def challenge_response(
    settings: ResourceServerSettings, error: ResourceServerError | None
) -> Response:
    """The RFC 6750 §3 answer to a request without (``None``), with a bad, or a too-weak token.

    ``scope`` holds the base scope, plus the required ones for :class:`InsufficientScopeError`.
    """
    params: list[tuple[str, str]] = []
    if error is not None and error.error_code:  # none without a token (RFC 6750 §3.1)
        params.append(("error", error.error_code))
        if error.description:
            params.append(("error_description", error.description))
    params.append(("resource_metadata", settings.resource_metadata_url))
    scope = _challenge_scope(settings, error)
    if scope:
        params.append(("scope", scope))
    challenge = "Bearer " + ", ".join(f"{name}={_quote(value)}" for name, value in params)
    body = {
        "error": error.error_code if error is not None and error.error_code else "unauthorized",
        "error_description": error.description
        if error is not None
        else "this endpoint needs a bearer access token",
    }
    return JSONResponse(
        body,
        status_code=error.status_code if error is not None else 401,
        headers={"WWW-Authenticate": challenge, "Cache-Control": "no-store"},
    )


def bearer_token(headers: Headers) -> str | None:
    """The token of the single ``Authorization: Bearer`` header, or None when there is none.

    Raises :class:`InvalidTokenError` for repeated or malformed bearer credentials. Another
    scheme (``Basic``…) counts as no token.
    """
    values = headers.getlist("authorization")
    if not values:
        return None
    if len(values) > 1:
        raise InvalidTokenError("send exactly one Authorization header")
    scheme, _, credentials = values[0].strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    token = credentials.strip(" \t")
    if _B64TOKEN.fullmatch(token) is None:
        raise InvalidTokenError("the Authorization header is not 'Bearer <token>'")
    return token


class BearerAuthMiddleware:
    """ASGI middleware requiring a valid bearer token on ``protected_paths`` (and below them).

    Defaults to the MCP endpoint's path (``settings.resource_path``). Other paths pass untouched.
    """

    def __init__(
        self,
        app: ASGIApp,
        settings: ResourceServerSettings,
        verifier: TokenVerifier,
        protected_paths: Collection[str] | None = None,
        anonymous: AnonymousLimiter | None = None,
    ) -> None:
        self.app = app
        self.settings = settings
        self.verifier = verifier
        #: Set when public tools exist: requests without a token go on as :data:`ANONYMOUS`.
        self.anonymous = anonymous
        paths = protected_paths if protected_paths is not None else (settings.resource_path,)
        self.protected_paths = tuple(path.rstrip("/") or "/" for path in paths)
        self._exact = frozenset(self.protected_paths)
        self._prefixes = tuple(protected.rstrip("/") + "/" for protected in self.protected_paths)

    def is_protected(self, path: str) -> bool:
        return path in self._exact or path.startswith(self._prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or not self.is_protected(scope["path"]):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":  # the MCP transport is HTTP only
            await send({"type": "websocket.close", "code": 1008})
            return
        headers = request_headers(scope)
        origin = headers.get("origin")
        if origin is not None:
            send = _with_cors_headers(send, origin)
            if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
                asked = headers.get("access-control-request-headers", "")
                await _preflight_response(asked)(scope, receive, send)
                return
        try:
            token = bearer_token(headers)
            del headers  # not held by this frame for the life of a stream
            if token is None:
                await self._without_token(scope, receive, send)
                return
            principal = await self.verifier.verify(token)
        except InvalidTokenError as error:
            logger.info("bearer token rejected: %s (%s)", error.description, error.detail)
            await challenge_response(self.settings, error)(scope, receive, send)
            return
        except KeySourceError as error:
            logger.error("cannot verify bearer tokens: %s", error)
            body = {"error": "temporarily_unavailable", "error_description": "try again later"}
            unavailable = JSONResponse(body, status_code=503, headers={"Retry-After": "5"})
            await unavailable(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        state["principal"] = principal
        # Long-lived streams (subscriptions/listen) check the token again while they run.
        state["revalidate"] = Recheck(self.verifier, token)
        await self.app(scope, receive, send)

    async def _without_token(self, scope: Scope, receive: Receive, send: Send) -> None:
        await serve_without_credentials(
            self.app, self.settings, self.anonymous, scope, receive, send
        )


class Recheck:
    """Checks one bearer token again (long-lived streams, SECURITY-CASES S73).

    ``key`` names the token, so that a worker's streams opened with the same token share one
    check (:class:`resourceserver.mcp.listen_watch.ListenWatch`)."""

    __slots__ = ("key", "verifier")

    def __init__(self, verifier: TokenVerifier, token: str) -> None:
        self.verifier = verifier
        self.key = token

    def __call__(self) -> Awaitable[Principal]:
        return self.verifier.verify(self.key)


async def serve_without_credentials(
    app: ASGIApp,
    settings: ResourceServerSettings,
    anonymous: AnonymousLimiter | None,
    scope: Scope,
    receive: Receive,
    send: Send,
) -> None:
    """No credentials: 401 with the challenge, or (public tools) on to ``app`` as the anonymous
    caller, within the anonymous rate limit (S83). Bearer and host authentication share it."""
    if anonymous is None:
        await challenge_response(settings, None)(scope, receive, send)
        return
    client = scope.get("client")
    wait = anonymous.admit(client[0] if client else None)
    if wait is not None:
        body = {"error": "rate_limited", "error_description": "too many anonymous requests"}
        headers = {"Retry-After": str(int(wait)), "Cache-Control": "no-store"}
        await JSONResponse(body, status_code=429, headers=headers)(scope, receive, send)
        return
    scope.setdefault("state", {})["principal"] = ANONYMOUS
    await app(scope, receive, send)


def _preflight_response(asked: str) -> Response:
    """Allows the MCP headers, plus the ``Mcp-Param-*`` headers the preflight names."""
    params = [
        name
        for name in (part.strip().lower() for part in asked.split(",")[:32])
        if _PARAM_HEADER.match(name)
    ]
    allowed = ", ".join([CORS_ALLOW_HEADERS, *params])
    return Response(
        status_code=204,
        headers={
            "Access-Control-Allow-Methods": CORS_ALLOW_METHODS,
            "Access-Control-Allow-Headers": allowed,
            "Access-Control-Max-Age": "600",
        },
    )


def _with_cors_headers(send: Send, origin: str) -> Send:
    async def send_with_cors(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = MutableHeaders(scope=message)
            headers["Access-Control-Allow-Origin"] = origin
            headers["Access-Control-Expose-Headers"] = CORS_EXPOSE_HEADERS
            headers.add_vary_header("Origin")
        await send(message)

    return send_with_cors
