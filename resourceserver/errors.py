"""Errors of the resource server (RFC 6750 §3.1): bad tokens and too-weak tokens."""

from __future__ import annotations


class ResourceServerError(Exception):
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
