"""The authorization server's error family (RFC 6749 §4.1.2.1, §5.2; RFC 7591 §3.2.2; RFC 8707 §2).

Each class names its RFC error code and HTTP status. ``description`` is public; ``detail`` is
logged, never sent.
"""

from __future__ import annotations

from typing import ClassVar

from starlette.responses import JSONResponse

NO_STORE_HEADERS = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class OAuthError(Exception):
    """Base of every error the authorization server answers with."""

    error: ClassVar[str] = "server_error"
    status_code: ClassVar[int] = 400

    def __init__(self, description: str = "", *, detail: str = "") -> None:
        super().__init__(description or self.error)
        self.description = description
        self.detail = detail

    def body(self) -> dict[str, str]:
        """The JSON body (RFC 6749 §5.2)."""
        body = {"error": self.error}
        if self.description:
            body["error_description"] = self.description
        return body

    def headers(self) -> dict[str, str]:
        """Response headers besides the body's content type."""
        return dict(NO_STORE_HEADERS)

    def to_response(self) -> JSONResponse:
        """A JSON error response with ``Cache-Control: no-store``."""
        return JSONResponse(self.body(), status_code=self.status_code, headers=self.headers())


class InvalidRequestError(OAuthError):
    error = "invalid_request"


class InvalidClientError(OAuthError):
    """Client authentication failed (RFC 6749 §5.2): 401, with a challenge when Basic was tried."""

    error = "invalid_client"
    status_code = 401

    def __init__(
        self, description: str = "", *, detail: str = "", basic_tried: bool = False
    ) -> None:
        super().__init__(description, detail=detail)
        self.basic_tried = basic_tried

    def headers(self) -> dict[str, str]:
        headers = super().headers()
        if self.basic_tried:
            headers["WWW-Authenticate"] = 'Basic realm="charter", charset="UTF-8"'
        return headers


class InvalidGrantError(OAuthError):
    error = "invalid_grant"


class UnauthorizedClientError(OAuthError):
    error = "unauthorized_client"


class UnsupportedGrantTypeError(OAuthError):
    error = "unsupported_grant_type"


class UnsupportedResponseTypeError(OAuthError):
    error = "unsupported_response_type"


class InvalidScopeError(OAuthError):
    error = "invalid_scope"


class InvalidTargetError(OAuthError):
    """RFC 8707 §2: the ``resource`` is unknown, relative, or has a fragment."""

    error = "invalid_target"


class AccessDeniedError(OAuthError):
    error = "access_denied"
    status_code = 403


class LoginRequiredError(OAuthError):
    """``prompt=none`` but nobody is logged in (OpenID Connect Core §3.1.2.6)."""

    error = "login_required"


class ConsentRequiredError(OAuthError):
    """``prompt=none`` but consent must be asked for (OpenID Connect Core §3.1.2.6)."""

    error = "consent_required"


class UnsupportedTokenTypeError(OAuthError):
    error = "unsupported_token_type"


class InvalidRedirectUriError(OAuthError):
    """RFC 7591 §3.2.2."""

    error = "invalid_redirect_uri"


class InvalidClientMetadataError(OAuthError):
    """RFC 7591 §3.2.2."""

    error = "invalid_client_metadata"


class InvalidSoftwareStatementError(OAuthError):
    """RFC 7591 §3.2.2."""

    error = "invalid_software_statement"


class UnapprovedSoftwareStatementError(OAuthError):
    """RFC 7591 §3.2.2."""

    error = "unapproved_software_statement"


class InvalidTokenError(OAuthError):
    """RFC 6750 §3.1 / RFC 7592 §2: a bad registration access token."""

    error = "invalid_token"
    status_code = 401


class RegistrationTokenError(InvalidTokenError):
    """RFC 7592 §2: the registration access token is missing or wrong (or the client unknown)."""

    def headers(self) -> dict[str, str]:
        headers = super().headers()
        headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
        return headers


class SlowDownError(OAuthError):
    """Too many requests: 429 with ``Retry-After``."""

    error = "slow_down"
    status_code = 429

    def __init__(self, retry_after: int, description: str = "", *, detail: str = "") -> None:
        super().__init__(description or "too many requests, retry later", detail=detail)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        headers = super().headers()
        headers["Retry-After"] = str(self.retry_after)
        return headers


class TemporarilyUnavailableError(OAuthError):
    """The database is unreachable (S61): 503."""

    error = "temporarily_unavailable"
    status_code = 503

    def headers(self) -> dict[str, str]:
        headers = super().headers()
        headers["Retry-After"] = "5"
        return headers


class ServerError(OAuthError):
    error = "server_error"
    status_code = 500
