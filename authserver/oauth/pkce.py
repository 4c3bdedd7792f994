"""Proof Key for Code Exchange with S256 only, required for every client (RFC 7636 §4.2, §4.6;
OAuth 2.1 §4.1.1; S10-S14).

The authorization endpoint accepts only an S256 ``code_challenge``
(:mod:`authserver.oauth.authorization_request`); the token endpoint checks the
``code_verifier`` against it (:class:`PkceS256`, an authlib grant extension).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from typing import Any

from authlib.oauth2.rfc7636 import CodeChallenge

from authserver.errors import InvalidGrantError, InvalidRequestError
from authserver.storage.token_rows import CodeState

#: RFC 7636 §4.1: 43..128 characters of ``[A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~"``.
CODE_VERIFIER_PATTERN = re.compile(r"[A-Za-z0-9\-._~]{43,128}")


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
        row: CodeState = request.authorization_code.row
        verifier = request.form.get("code_verifier")
        if not row.code_challenge or row.code_challenge_method != "S256":
            raise InvalidGrantError("the code was issued without an S256 code_challenge")
        if not verifier:
            raise InvalidRequestError("code_verifier is required")
        if not CODE_VERIFIER_PATTERN.fullmatch(verifier):
            raise InvalidRequestError("code_verifier must be 43-128 unreserved characters")
        if not hmac.compare_digest(s256(verifier), row.code_challenge):
            raise InvalidGrantError("code_verifier does not match the code_challenge")
