"""Errors of the resource server: the root :class:`McpError`, and the bearer-token errors
(RFC 6750 §3.1: bad tokens and too-weak tokens).

Every error the resource server raises on purpose derives from :class:`McpError`, as every
authorization-server error derives from ``OAuthError``: the protocol and tool errors in
:mod:`resourceserver.mcp.errors`, the token errors here, and
:class:`resourceserver.jwks.KeySourceError`.
"""

from __future__ import annotations


class McpError(Exception):
    """Root of every error the MCP resource server raises on purpose."""


class ResourceServerError(McpError):
    """Base of the resource server's bearer-token errors."""

    status_code: int = 401
    error_code: str = ""

    def __init__(self, description: str = "", *, detail: str = "") -> None:
        super().__init__(description or self.error_code)
        #: Safe to send to the caller.
        self.description = description
        #: Logged only, never sent.
        self.detail = detail


class InvalidTokenError(ResourceServerError):
    """The token is missing its signature, expired, revoked, for another audience... (401)."""

    status_code = 401
    error_code = "invalid_token"


class InsufficientScopeError(ResourceServerError):
    """The token is valid but lacks the scopes an operation needs (403)."""

    status_code = 403
    error_code = "insufficient_scope"

    def __init__(
        self, required: frozenset[str], description: str = "", *, detail: str = ""
    ) -> None:
        super().__init__(description or "the access token lacks required scopes", detail=detail)
        self.required = required


class SignInRequiredError(InsufficientScopeError):
    """An anonymous caller asked for something that is not public (401 without an error code,
    the challenge naming the scopes it needs: step-up from anonymous, RFC 6750 §3.1)."""

    status_code = 401
    error_code = ""

    def __init__(self, required: frozenset[str]) -> None:
        super().__init__(required, "sign in: this needs an access token")
