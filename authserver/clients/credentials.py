"""The client credentials a request presents (RFC 6749 §2.3: exactly one method;
§2.3.1 ``client_secret_basic`` and ``client_secret_post``; RFC 7591 §2 ``none``, a public client
naming itself with ``client_id``). Parsing only: :mod:`authserver.clients.authentication` checks
them against the client store.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote_plus

from authserver.errors import InvalidClientError, InvalidRequestError
from authserver.text_input import NUL

NONE = "none"
BASIC = "client_secret_basic"
POST = "client_secret_post"
#: The shared-secret methods, in the order metadata lists them.
SECRET_METHODS = (BASIC, POST)


@dataclass(frozen=True)
class PresentedCredentials:
    """How a request says who the client is: the method it used, the id, the secret if any."""

    method: str
    client_id: str
    secret: str | None = None

    @property
    def basic_tried(self) -> bool:
        """True when the request carried HTTP Basic credentials."""
        return self.method == BASIC

    def __repr__(self) -> str:  # never show the secret
        return f"PresentedCredentials(method={self.method!r}, client_id={self.client_id!r})"


def _parse_basic(value: str) -> tuple[str, str]:
    try:
        raw = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise InvalidClientError("malformed Basic credentials", basic_tried=True) from exc
    client_id, sep, secret = raw.partition(":")
    client_id, secret = unquote_plus(client_id), unquote_plus(secret)
    if not sep or not client_id or NUL in client_id or NUL in secret:  # S102
        raise InvalidClientError("malformed Basic credentials", basic_tried=True)
    return client_id, secret


def presented_credentials(
    headers: Mapping[str, str], form: Mapping[str, str]
) -> PresentedCredentials:
    """The client credentials of a request; exactly one method may be used (RFC 6749 §2.3)."""
    authorization = headers.get("authorization", "")
    scheme, _, value = authorization.partition(" ")
    form_id = form.get("client_id")
    form_secret = form.get("client_secret")
    if scheme.lower() == "basic":
        if form_secret is not None:
            raise InvalidRequestError("use only one client authentication method")
        client_id, secret = _parse_basic(value)
        if form_id is not None and form_id != client_id:
            raise InvalidClientError(
                "client_id differs from the Basic credentials", basic_tried=True
            )
        return PresentedCredentials(BASIC, client_id, secret)
    if not form_id:
        raise InvalidClientError("client_id is required")
    if form_secret is not None:
        return PresentedCredentials(POST, form_id, form_secret)
    return PresentedCredentials(NONE, form_id)
